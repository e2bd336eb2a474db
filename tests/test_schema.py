"""Listing schema and streaming readers: quarantine reasons, line numbers, round trips."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ecomvlm.schema import (
    MAX_RAW_CHARS,
    Listing,
    ListingReader,
    read_listings,
    write_listings,
    write_listings_jsonl,
)

HTML = '<p class="x">Soft <b>cotton</b>, "quoted", comma,\nsecond line &amp; more</p>'


def _good(listing_id: str, **extra: object) -> dict:
    return {"id": listing_id, "title": f"Item {listing_id}", **extra}


def _jsonl_line(record: object) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _quarantine(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _sample_listings() -> list[Listing]:
    return [
        Listing(id="a1", title="Linen shirt", description=HTML, category="Clothing > Shirts",
                aspects={"Color": "Blue", "Size": ["S", "M", "L"], "Pockets": "2"},
                images=["imgs/a1_0.jpg", "https://cdn.example.com/a1.png?w=1&h=2"],
                price=19.99, currency="EUR", condition="New", meta={"seller": {"id": 7}}),
        Listing(id="b2", title="Lampe « Été » 灯", description="  leading spaces kept  "),
        Listing(id="c3", title="Mug", price=0.1 + 0.2, images=["c3.jpg"], meta={"tags": ["x", 1]}),
    ]


def test_each_bad_jsonl_record_is_quarantined_with_reason_and_line(tmp_path: Path) -> None:
    lines = [
        _jsonl_line(_good("ok1")),                                         # 1 kept
        b'{"id": "x", "title": \n',                                        # 2
        _jsonl_line(["not", "an", "object"]),                              # 3
        _jsonl_line({"id": "m1"}),                                         # 4
        _jsonl_line({"id": "w1", "title": "T", "price": "cheap"}),         # 5
        _jsonl_line(_good("ok1")),                                         # 6 duplicate
        _jsonl_line(_good("i1", images=[f"{n}.jpg" for n in range(17)])),  # 7
        _jsonl_line(_good("l1", title="x" * 501)),                         # 8
        _jsonl_line(_good("u1", images=["file:///etc/passwd"])),           # 9
        _jsonl_line(_good("u2", images=["data:image/png;base64,AAAA"])),   # 10
        _jsonl_line(_good("f1", titel="typo")),                            # 11
        b'{"id": "e1", "title": "caf\xe9"}\n',                             # 12
        b"\n",                                                             # 13 blank: skipped
        _jsonl_line(_good("v1", price=-3)),                                # 14
        _jsonl_line(_good("ok2", description=HTML)),                       # 15 kept
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(b"".join(lines))
    quarantine_path = tmp_path / "bad" / "quarantine.jsonl"

    reader = ListingReader(source, quarantine_path)
    kept = list(reader)

    assert [listing.id for listing in kept] == ["ok1", "ok2"]
    assert kept[1].description == HTML  # HTML is accepted verbatim
    expected = [(2, "invalid_json", None), (3, "not_object", None), (4, "missing_field", "m1"),
                (5, "wrong_type", "w1"), (6, "duplicate_id", "ok1"), (7, "too_many_images", "i1"),
                (8, "too_long", "l1"), (9, "bad_url", "u1"), (10, "bad_url", "u2"),
                (11, "unknown_field", "f1"), (12, "bad_encoding", None),
                (14, "invalid_value", "v1")]
    entries = _quarantine(quarantine_path)
    assert [(e["line"], e["reason"], e["id"]) for e in entries] == expected
    assert all(e["source"] == str(source) for e in entries)
    assert all(f":{e['line']}" in e["detail"] for e in entries)
    assert "first seen at line 1" in entries[4]["detail"]
    assert entries[3]["raw"] == '{"id": "w1", "title": "T", "price": "cheap"}'
    assert reader.seen == reader.read + reader.quarantined == 14
    assert (reader.read, reader.quarantined) == (2, 12)
    assert reader.reasons["bad_url"] == 2


def test_unknown_field_is_named_with_a_suggestion(tmp_path: Path) -> None:
    source = tmp_path / "typo.jsonl"
    source.write_bytes(_jsonl_line(_good("t1", descripton="oops")))
    list(read_listings(source, tmp_path / "q.jsonl"))
    (entry,) = _quarantine(tmp_path / "q.jsonl")
    assert entry["reason"] == "unknown_field"
    assert "'descripton'" in entry["detail"] and "did you mean 'description'" in entry["detail"]


def test_aspects_are_normalised_and_list_values_kept() -> None:
    listing = Listing.model_validate(_good("a", aspects={
        " Color ": " red ", "Sizes": [" S ", "M", 42, " "], "Weight": 1.5, "Blank": "  "}))
    assert listing.aspects == {"Color": "red", "Sizes": ["S", "M", "42"], "Weight": "1.5"}
    for bad in ({"Flag": True}, {"Nested": {"x": "y"}}, {" ": "v"}, {"k": "v" * 501}):
        with pytest.raises(ValueError):
            Listing.model_validate(_good("a", aspects=bad))


def test_image_refs_allow_paths_and_http_only() -> None:
    ok = Listing.model_validate(_good("a", images=["x/y.jpg", "/abs/z.png", "http://h/i.jpg"]))
    assert ok.images == ["x/y.jpg", "/abs/z.png", "http://h/i.jpg"]
    for bad in ("ftp://h/i.jpg", "javascript:alert(1)", "https:///no-host", ""):
        with pytest.raises(ValueError):
            Listing.model_validate(_good("a", images=[bad]))


def test_round_trip_jsonl_csv_parquet_gz_is_identical(tmp_path: Path) -> None:
    listings = _sample_listings()
    names = ("a.jsonl", "b.csv", "c.parquet", "d.jsonl.gz", "e.csv.gz")
    paths = [tmp_path / name for name in names]
    previous = listings
    for path in paths:
        assert write_listings(previous, path) == len(listings)
        previous = list(read_listings(path, tmp_path / "q.jsonl"))
        assert previous == listings, path.name
    assert not (tmp_path / "q.jsonl").exists()
    with gzip.open(paths[3], "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    assert list(first) == list(Listing.model_fields)  # stable key order, optional Nones dropped
    assert "Été" in paths[0].read_text(encoding="utf-8")  # ensure_ascii=False


def test_write_listings_jsonl_is_stable_and_returns_count(tmp_path: Path) -> None:
    one, two = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    assert write_listings_jsonl(_sample_listings(), one) == 3
    write_listings_jsonl(iter(_sample_listings()), two)
    assert one.read_bytes() == two.read_bytes()
    assert len(one.read_text(encoding="utf-8").splitlines()) == 3


def test_csv_reports_physical_start_line_after_embedded_newlines(tmp_path: Path) -> None:
    source = tmp_path / "listings.csv"
    source.write_text(
        "id,title,description,images,aspects,price\n"          # 1
        'c1,Shirt,"line one\nline two\nline three",a.jpg|b.jpg,"{""Size"": [""S"", ""M""]}",12.5\n'
        "\n"                                                     # 5 blank
        'c2,,"no title\nhere",,,\n'                              # 6-7
        "c3,Lamp,,,{not json},\n"                                # 8
        "c4,Chair,,,,cheap\n"                                    # 9
        "c5,Too,many,,,,extra\n"                                 # 10
        'c6,Desk,"fine",,,\n',                                   # 11
        encoding="utf-8", newline="")
    with open(source, "ab") as handle:
        handle.write(b"c7,Caf\xe9,,,,\n")                        # 12
    quarantine_path = tmp_path / "q.jsonl"
    reader = ListingReader(source, quarantine_path)
    kept = list(reader)

    assert [k.id for k in kept] == ["c1", "c6"]
    assert kept[0].description == "line one\nline two\nline three"
    assert kept[0].images == ["a.jpg", "b.jpg"] and kept[0].aspects == {"Size": ["S", "M"]}
    assert kept[0].price == 12.5 and kept[1].aspects == {} and kept[1].price is None
    entries = _quarantine(quarantine_path)
    assert [(e["line"], e["reason"], e["id"]) for e in entries] == [
        (6, "missing_field", "c2"), (8, "invalid_json", "c3"), (9, "wrong_type", "c4"),
        (10, "malformed_row", None), (12, "bad_encoding", None)]
    assert entries[0]["raw"] == 'c2,,"no title\nhere",,,\n'
    assert reader.seen == reader.read + reader.quarantined == 7


def test_csv_bad_quoting_and_huge_cells_do_not_derail_later_rows(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "messy.csv"
    source.write_text(
        "id,title,description\r\n"                              # 1
        'q1,"Hat"junk,x\r\n'                                    # 2 stray text after a quote
        f'q2,Huge,"{"z" * 200_000}\nstill inside\n"\r\n'          # 3-5 over the csv field limit
        "q3,Fine,ok\r\n"                                        # 6
        'q4,Open,"never closed\r\n',                            # 7-
        encoding="utf-8", newline="")
    reader = ListingReader(source)  # no quarantine file: rejects are logged and counted
    assert [listing.id for listing in reader] == ["q3"]
    assert reader.reasons == {"malformed_row": 2, "too_long": 1}
    assert f"{source}:3 (id 'q2')" in caplog.text


def test_parquet_struct_map_and_pipe_string_columns_with_row_numbers(tmp_path: Path) -> None:
    table = pa.table({
        "id": ["p1", "p2", "p1", None],
        "title": ["Boots", "Hat", "Dup", "No id"],
        "images": ["a.jpg|https://h/b.jpg", None, None, None],
        "aspects": pa.array([{"Color": "red", "Size": None}, {"Color": None, "Size": "L"},
                             None, None], type=pa.struct([("Color", pa.string()),
                                                          ("Size", pa.string())])),
        "meta": pa.array([[("k", "v")], None, None, None], type=pa.map_(pa.string(), pa.string())),
        "price": [10.0, None, 1.0, 2.0],
    })
    source = tmp_path / "rows.parquet"
    pq.write_table(table, source)
    reader = ListingReader(source, tmp_path / "q.jsonl")
    kept = list(reader)
    assert kept[0] == Listing(id="p1", title="Boots", images=["a.jpg", "https://h/b.jpg"],
                              aspects={"Color": "red"}, meta={"k": "v"}, price=10.0)
    assert kept[1].aspects == {"Size": "L"}
    entries = _quarantine(tmp_path / "q.jsonl")
    assert [(e["line"], e["reason"]) for e in entries] == [(3, "duplicate_id"),
                                                           (4, "missing_field")]
    assert json.loads(entries[0]["raw"])["title"] == "Dup"
    assert reader.seen == reader.read + reader.quarantined == 4


def test_raw_text_is_truncated_and_quarantine_appends(tmp_path: Path) -> None:
    source = tmp_path / "long.jsonl"
    source.write_bytes(_jsonl_line({"id": "big", "title": "t", "description": "d" * 200_000}))
    quarantine_path = tmp_path / "q.jsonl"
    list(read_listings(source, quarantine_path))
    list(read_listings(source, quarantine_path))  # a second run appends, never truncates
    entries = _quarantine(quarantine_path)
    assert [e["reason"] for e in entries] == ["too_long", "too_long"]
    assert len(entries[0]["raw"]) == MAX_RAW_CHARS


def test_records_stream_before_a_broken_tail_is_reached(tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    with open(source, "wb") as handle:
        handle.writelines(_jsonl_line(_good(f"id{n}", description="x" * 100))
                          for n in range(20_000))
        handle.write(b'{"id": "broken", "title": \n')
    quarantine_path = tmp_path / "q.jsonl"
    reader = ListingReader(source, quarantine_path)
    stream = iter(reader)
    assert next(stream).id == "id0"
    assert (reader.seen, reader.read) == (1, 1)
    assert not quarantine_path.exists()  # the bad last line has not been touched yet
    assert sum(1 for _ in stream) == 19_999
    assert _quarantine(quarantine_path)[0]["line"] == 20_001  # flushed while still open


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_first_record_arrives_while_the_writer_is_still_writing(tmp_path: Path,
                                                                suffix: str) -> None:
    """A pipe whose writer waits for us: a reader that slurped the file would stall."""
    pipe = tmp_path / f"live{suffix}"
    os.mkfifo(pipe)
    first_seen = threading.Event()
    released_by_reader: list[bool] = []
    head, tail = ((_jsonl_line(_good("first")), _jsonl_line(_good("second"))) if suffix == ".jsonl"
                  else (b"id,title\nfirst,Item first\n", b"second,Item second\n"))

    def writer() -> None:
        with open(pipe, "wb", buffering=0) as out:
            out.write(head)
            released_by_reader.append(first_seen.wait(timeout=10))
            out.write(tail)

    thread = threading.Thread(target=writer)
    thread.start()
    stream = read_listings(pipe)
    assert next(stream).id == "first"
    first_seen.set()
    assert [listing.id for listing in stream] == ["second"]
    thread.join()
    assert released_by_reader == [True]


def test_parquet_reads_in_bounded_batches(tmp_path: Path) -> None:
    path = tmp_path / "large.parquet"
    rows = (Listing(id=f"r{n}", title="t", description="y" * 2_000) for n in range(10_000))
    write_listings(rows, path, row_group_size=500)  # ~20 MB of text in 20 row groups
    before = pa.total_allocated_bytes()
    reader = ListingReader(path, batch_size=100)
    stream = iter(reader)
    assert next(stream).id == "r0"
    assert pa.total_allocated_bytes() - before < 5_000_000
    assert sum(1 for _ in stream) + 1 == reader.read == 10_000


def test_format_inference_and_guards(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        ListingReader(tmp_path / "listings.txt")
    assert ListingReader(tmp_path / "x.txt", format="csv").format == "csv"
    assert ListingReader(tmp_path / "x.json").format == "jsonl"
    same = tmp_path / "x.jsonl"
    with pytest.raises(ValueError, match="differ"):
        ListingReader(same, same)
    with pytest.raises(ValueError, match=r"\|"):
        write_listings([Listing(id="a", title="t", images=["a|b.jpg"])], tmp_path / "x.csv")
