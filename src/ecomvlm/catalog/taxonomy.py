"""The marketplace taxonomy: categories, their aspect schemas, and the closed value sets.

Everything downstream reads this one table: the synthetic catalog draws products from it,
curation normalises keys and values against it, the benchmarks score against it. Brands are
invented so no real trademark appears in generated data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Canonical colour names with the RGB the renderer paints them in. Kept far apart in hue or
# lightness so "what colour is it" has one right answer under lighting jitter.
COLOURS: dict[str, tuple[int, int, int]] = {
    "Black": (25, 25, 28),
    "White": (238, 238, 234),
    "Grey": (128, 128, 132),
    "Red": (200, 30, 35),
    "Navy": (28, 40, 95),
    "Blue": (40, 110, 210),
    "Green": (40, 140, 60),
    "Yellow": (240, 205, 40),
    "Orange": (240, 120, 30),
    "Pink": (240, 140, 180),
    "Purple": (120, 50, 150),
    "Brown": (110, 70, 40),
    "Beige": (215, 195, 160),
}

# Spellings sellers use for the same colour; curation maps them back to the canonical name.
COLOUR_SYNONYMS: dict[str, list[str]] = {
    "Black": ["black", "Jet Black", "Onyx", "BLK"],
    "White": ["white", "Off White", "Snow", "WHT"],
    "Grey": ["Gray", "grey", "Charcoal", "Heather Grey"],
    "Red": ["red", "Scarlet", "Crimson"],
    "Navy": ["Navy Blue", "navy", "Dark Blue"],
    "Blue": ["blue", "Royal Blue", "Sky Blue"],
    "Green": ["green", "Olive", "Forest Green"],
    "Yellow": ["yellow", "Mustard", "Lemon"],
    "Orange": ["orange", "Tangerine", "Burnt Orange"],
    "Pink": ["pink", "Rose", "Blush"],
    "Purple": ["purple", "Violet", "Lilac"],
    "Brown": ["brown", "Chocolate", "Tan Brown"],
    "Beige": ["beige", "Cream", "Sand", "Khaki"],
}

PATTERNS = ["Solid", "Striped", "Polka Dot", "Checked", "Floral"]

# Invented brands. The last three of each group only ever appear in the test split, so
# benchmarks can measure generalisation to unseen brands.
FASHION_BRANDS = [
    "Nordvik", "Lumora", "Velloa", "Tamsin & Co", "Orvelle", "Brisco", "Kestrel Lane",
    "Mireva", "Calloway", "Ferro Mode", "Aubrin", "Sollen", "Haverly", "Quinto", "Zephyrine",
]
GOODS_BRANDS = [
    "Arcton", "Voltera", "Halden", "Quillon", "Zentra", "Brightwell", "Oskar Home",
    "Tidemark", "Nexaro", "Pellucid", "Ruvio", "Stellan", "Korvex", "Lumenta", "Ambrix",
]
HELD_OUT_BRANDS = {"Haverly", "Quinto", "Zephyrine", "Korvex", "Lumenta", "Ambrix"}

CLOTHING_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
SHOE_SIZES = ["UK 5", "UK 6", "UK 7", "UK 8", "UK 9", "UK 10", "UK 11"]
WAIST_SIZES = ["W28", "W30", "W32", "W34", "W36", "W38"]

# Compliance marks and warnings a packaging image may carry. Each is drawn small, so a
# whole-image view at 224 px loses it; ground truth keeps its box.
MARKS = {
    "ce": "CE conformity mark",
    "ukca": "UKCA conformity mark",
    "weee": "crossed-out wheelie bin (WEEE)",
    "battery_warning": "lithium battery warning",
    "under_3": "not suitable for children under 3",
    "choking_hazard": "small parts choking hazard warning",
    "food_safe": "food contact safe (glass and fork)",
    "hot_surface": "hot surface caution",
    "recycle": "recyclable packaging (Mobius loop)",
}


@dataclass(frozen=True)
class Aspect:
    """One key of a category's aspect schema.

    ``visible`` says where a buyer could check the value: "product" (the item itself),
    "label" (a label close-up), or "" (only the seller knows; e.g. size of a cap).
    ``unit`` marks numeric values written with a unit, which sellers spell many ways.
    """

    key: str
    values: tuple[str, ...]
    visible: str = "product"
    unit: str = ""


@dataclass(frozen=True)
class Category:
    name: str
    group: str  # "fashion" or "goods"
    aspects: tuple[Aspect, ...]
    # compliance marks that can appear on this category's packaging
    marks: tuple[str, ...] = ()
    # probability the product contains a battery (ground truth for the battery question)
    battery: float = 0.0
    # words sellers stuff into titles for this category
    keywords: tuple[str, ...] = field(default_factory=tuple)

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.aspects]

    def aspect(self, key: str) -> Aspect:
        for a in self.aspects:
            if a.key == key:
                return a
        raise KeyError(f"{self.name} has no aspect {key!r}; keys: {self.keys}")

    @property
    def is_fashion(self) -> bool:
        return self.group == "fashion"


def _a(key: str, values, visible: str = "product", unit: str = "") -> Aspect:
    return Aspect(key, tuple(values), visible, unit)


_COLOUR = _a("Color", COLOURS)
_PATTERN = _a("Pattern", PATTERNS)
_FABRIC = _a("Material", ["100% Cotton", "Polyester", "Cotton Blend", "Linen", "Viscose"], "label")
_SIZE = _a("Size", CLOTHING_SIZES, "label")
_ELECTRONIC = ("ce", "ukca", "weee", "recycle")


def _brand(group: str) -> Aspect:
    return _a("Brand", FASHION_BRANDS if group == "fashion" else GOODS_BRANDS, "label")


CATEGORIES: dict[str, Category] = {c.name: c for c in [
    # ---- fashion -------------------------------------------------------------------
    Category("T-Shirt", "fashion", (
        _COLOUR, _PATTERN, _a("Sleeve Length", ["Short Sleeve", "Long Sleeve", "Sleeveless"]),
        _a("Neckline", ["Crew Neck", "V-Neck"]), _SIZE, _FABRIC, _brand("fashion")),
        keywords=("tee", "top", "casual", "summer", "unisex", "gym")),
    Category("Shirt", "fashion", (
        _COLOUR, _PATTERN, _a("Sleeve Length", ["Short Sleeve", "Long Sleeve"]),
        _a("Collar", ["Point Collar", "Button-Down Collar"]), _SIZE, _FABRIC, _brand("fashion")),
        keywords=("formal", "office", "button up", "smart", "work")),
    Category("Dress", "fashion", (
        _COLOUR, _PATTERN, _a("Sleeve Length", ["Short Sleeve", "Long Sleeve", "Sleeveless"]),
        _a("Neckline", ["Crew Neck", "V-Neck"]), _a("Dress Length", ["Mini", "Midi", "Maxi"]),
        _SIZE, _FABRIC, _brand("fashion")),
        keywords=("party", "evening", "summer", "ladies", "boho")),
    Category("Skirt", "fashion", (
        _COLOUR, _PATTERN, _a("Skirt Length", ["Mini", "Midi", "Maxi"]), _SIZE, _FABRIC,
        _brand("fashion")),
        keywords=("pleated", "ladies", "a-line", "casual")),
    Category("Jeans", "fashion", (
        _a("Color", ["Blue", "Navy", "Black", "Grey", "White"]),
        _a("Fit", ["Skinny", "Straight", "Wide Leg"]), _a("Waist Size", WAIST_SIZES, "label"),
        _a("Material", ["Denim", "Stretch Denim"], "label"), _brand("fashion")),
        keywords=("denim", "pants", "trousers", "mens", "womens")),
    Category("Jacket", "fashion", (
        _COLOUR, _a("Closure", ["Zip", "Button"]), _a("Hood", ["Hooded", "No Hood"]), _SIZE,
        _a("Material", ["Polyester", "Nylon", "Wool Blend", "Faux Leather"], "label"),
        _brand("fashion")),
        keywords=("coat", "winter", "outerwear", "windbreaker", "warm")),
    Category("Sneakers", "fashion", (
        _COLOUR, _a("Closure", ["Lace-Up", "Slip-On"]), _a("Shoe Size", SHOE_SIZES, "label"),
        _a("Upper Material", ["Canvas", "Mesh", "Leather"], "label"), _brand("fashion")),
        keywords=("trainers", "running", "shoes", "sport", "kicks")),
    Category("Handbag", "fashion", (
        _COLOUR, _PATTERN, _a("Style", ["Tote", "Shoulder Bag", "Crossbody"]),
        _a("Material", ["Faux Leather", "Canvas", "Leather"], "label"), _brand("fashion")),
        keywords=("purse", "bag", "ladies", "shopper", "designer style")),
    Category("Cap", "fashion", (
        _COLOUR, _PATTERN, _a("Style", ["Baseball Cap", "Bucket Hat"]),
        _a("Size", ["One Size", "Adjustable"], ""), _a("Material", ["100% Cotton", "Polyester"],
                                                         "label"), _brand("fashion")),
        keywords=("hat", "sun", "snapback", "summer", "outdoor")),
    # ---- hard goods ----------------------------------------------------------------
    Category("Mug", "goods", (
        _COLOUR, _a("Capacity", ["250ml", "350ml", "450ml"], "label", "ml"),
        _a("Material", ["Ceramic", "Enamel", "Stoneware"], "label"), _brand("goods")),
        marks=("food_safe", "recycle"), keywords=("coffee", "tea", "cup", "gift", "kitchen")),
    Category("Water Bottle", "goods", (
        _COLOUR, _a("Capacity", ["500ml", "750ml", "1000ml"], "label", "ml"),
        _a("Material", ["Stainless Steel", "Tritan Plastic", "Glass"], "label"),
        _brand("goods")),
        marks=("food_safe", "recycle"), keywords=("gym", "sports", "flask", "bpa free", "hiking")),
    Category("Phone Case", "goods", (
        _COLOUR, _PATTERN, _a("Compatible Model", ["Model 12", "Model 13", "Model 14 Pro",
                                                   "Model S22", "Model S23"], "label"),
        _a("Material", ["Silicone", "TPU", "Faux Leather"], "label"), _brand("goods")),
        marks=("recycle",), keywords=("cover", "shockproof", "slim", "protective")),
    Category("Power Bank", "goods", (
        _COLOUR, _a("Capacity", ["5000mAh", "10000mAh", "20000mAh", "26800mAh"], "label", "mAh"),
        _brand("goods"), _a("Battery Type", ["Lithium-Ion", "Lithium Polymer"], "label"),
        _a("Ports", ["USB-C", "USB-A + USB-C", "2x USB-A + USB-C"], "product")),
        marks=_ELECTRONIC + ("battery_warning",), battery=1.0,
        keywords=("portable charger", "fast charge", "external battery", "travel")),
    Category("Headphones", "goods", (
        _COLOUR, _a("Type", ["Over-Ear", "On-Ear"]), _a("Connectivity", ["Wired", "Wireless"]),
        _brand("goods")),
        marks=_ELECTRONIC + ("battery_warning",), battery=0.5,
        keywords=("bluetooth", "headset", "noise cancelling", "bass", "earphones")),
    Category("Desk Lamp", "goods", (
        _COLOUR, _a("Power", ["5W", "8W", "12W"], "label", "W"),
        _a("Light Source", ["LED", "Halogen"], ""),
        _a("Material", ["Metal", "Plastic"], "label"), _brand("goods")),
        marks=_ELECTRONIC, keywords=("reading light", "office", "study", "bedside", "dimmable")),
    Category("Toy", "goods", (
        _COLOUR, _a("Type", ["Teddy Bear", "Building Blocks", "Toy Car"]),
        _a("Age Range", ["3+ Years", "6+ Years", "8+ Years"], "label"),
        _a("Material", ["Plush", "Plastic", "Wood"], "label"), _brand("goods")),
        marks=("ce", "ukca", "under_3", "choking_hazard"), battery=0.25,
        keywords=("kids", "gift", "christmas", "children", "educational")),
    Category("Kettle", "goods", (
        _COLOUR, _a("Capacity", ["1.0L", "1.5L", "1.7L"], "label", "L"),
        _a("Material", ["Stainless Steel", "Plastic", "Glass"], "label"),
        _a("Power", ["2200W", "3000W"], "label", "W"), _brand("goods")),
        marks=_ELECTRONIC + ("hot_surface",), keywords=("electric", "fast boil", "kitchen", "cordless")),
]}

FASHION_CATEGORIES = [c for c in CATEGORIES.values() if c.is_fashion]
GOODS_CATEGORIES = [c for c in CATEGORIES.values() if not c.is_fashion]

# (category, colour) pairs that only the test split may hold: a model that learned
# "handbags are brown" from train is caught out here.
HELD_OUT_COMBOS: set[tuple[str, str]] = {
    ("T-Shirt", "Purple"), ("Dress", "Orange"), ("Jacket", "Pink"), ("Sneakers", "Yellow"),
    ("Handbag", "Green"), ("Cap", "Beige"), ("Mug", "Navy"), ("Water Bottle", "Red"),
    ("Power Bank", "Pink"), ("Headphones", "Yellow"), ("Kettle", "Purple"), ("Toy", "Grey"),
}

# Aspect key spellings sellers use; curation maps them back to the canonical key.
KEY_VARIANTS: dict[str, list[str]] = {
    "Color": ["Colour", "color", "Main Colour", "Main Color", "colour", "COLOR"],
    "Size": ["size", "Size (UK)", "Garment Size"],
    "Material": ["material", "Fabric", "Outer Material", "Composition"],
    "Brand": ["brand", "Brand Name", "Manufacturer"],
    "Pattern": ["pattern", "Print", "Design"],
    "Sleeve Length": ["Sleeve", "sleeve length", "Sleeve Type"],
    "Capacity": ["capacity", "Battery Capacity", "Volume"],
    "Neckline": ["Neck", "neckline", "Neck Style"],
    "Power": ["Wattage", "power", "Power (W)"],
    "Waist Size": ["Waist", "waist size"],
    "Shoe Size": ["UK Shoe Size", "shoe size"],
    "Age Range": ["Age Level", "Recommended Age"],
}


def canonical_keys() -> set[str]:
    return {k for c in CATEGORIES.values() for k in c.keys}


def category(name: str) -> Category:
    try:
        return CATEGORIES[name]
    except KeyError:
        raise KeyError(f"unknown category {name!r}; known: {sorted(CATEGORIES)}") from None
