import json
import sqlite3
import time

import numpy as np
import pytest
from PIL import Image

from prism_gui.engine.data.catalog import Catalog, CatalogError
from prism_gui.engine.data.lock import project_lock


def add(cat, run, item, k=0, energy=1.0, conf=0.5, prompt="the digit zero"):
    img = np.full((8, 8, 1), item % 255, np.uint8)
    return cat.add_image(run, item, img, class_index=k, class_name=str(k), prompt=prompt, seed=1000 + item,
                         generator="digits", settings={"cfg": 3},
                         score={"energy": energy, "energies": {"class": energy}, "confidence": conf,
                                "top5": [[k, conf]], "entropy": 0.1, "correct": True})


def test_rows_files_thumbnails_and_png_text_chunk(tmp_path):
    with Catalog(tmp_path) as cat:
        i = add(cat, "r", 0)
        row = cat.get(i)
        assert (tmp_path / row["path"]).exists() and (tmp_path / row["thumb"]).exists()
        assert Image.open(tmp_path / row["thumb"]).size == (96, 96)
        meta = json.loads(Image.open(tmp_path / row["path"]).text["prism"])
        assert meta["seed"] == 1000 and meta["prompt"] == "the digit zero" and meta["settings"] == {"cfg": 3}
        assert row["energies"] == {"class": 1.0} and row["status"] == "unreviewed"
        with pytest.raises(sqlite3.IntegrityError):
            add(cat, "r", 0)
    assert sqlite3.connect(tmp_path / "catalog.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_filter_sort_and_count(tmp_path):
    with Catalog(tmp_path) as cat:
        for i in range(30):
            add(cat, "r", i, k=i % 3, energy=float(i), conf=i / 30, prompt=f"p{i % 2}")
        assert cat.count() == 30
        assert cat.count(classes=[1]) == 10
        assert cat.ids(sort="energy", descending=True, limit=3) == [30, 29, 28]
        assert cat.count(energy_max=9.5) == 10 and cat.count(confidence_min=0.5) == 15
        assert cat.count(text="p1") == 15
        with pytest.raises(CatalogError, match="cannot sort by"):
            cat.query(sort="path; DROP TABLE images")


def test_curation_is_undoable_including_threshold_rejects(tmp_path):
    with Catalog(tmp_path) as cat:
        for i in range(10):
            add(cat, "r", i, energy=float(i))
        cat.set_status([1, 2], "keep")
        a = cat.reject_beyond(6.5)
        assert cat.count(statuses=["reject"]) == 3
        assert cat.undo() == a
        assert cat.count(statuses=["reject"]) == 0 and cat.count(statuses=["keep"]) == 2
        cat.undo()
        assert cat.count(statuses=["unreviewed"]) == 10
        assert cat.undo() is None
        with pytest.raises(CatalogError, match="status must be"):
            cat.set_status([1], "maybe")


def test_select_lowest_keeps_the_best_per_class(tmp_path):
    with Catalog(tmp_path) as cat:
        for i in range(20):
            add(cat, "r", i, k=i % 2, energy=float(-i))
        from prism_gui.engine.analysis.selection import select_in_catalog

        select_in_catalog(cat, 3, strategy="lowest", run="r")
        kept = cat.query(statuses=["unreviewed"])
        assert sorted(r["item"] for r in kept) == [14, 15, 16, 17, 18, 19]


NOTHING = {"temp_files": 0, "adopted_files": 0, "unreadable_files": 0, "removed_thumbs": 0, "missing_files": 0,
           "missing_examples": []}


def test_repair_adopts_images_without_a_row_and_removes_only_temp_files_and_stray_thumbnails(tmp_path):
    from prism_gui.engine.data.image_files import write_image_files

    with Catalog(tmp_path) as cat:
        add(cat, "r", 0)
        # a complete image whose row never came (killed between the file and the row): adopted, not deleted
        write_image_files(tmp_path, "r", 9, np.full((8, 8, 1), 9, np.uint8), class_index=3, class_name="3",
                          prompt="p9", seed=1009, generator="digits", settings={}, score={"energy": -2.0})
        (tmp_path / "thumbs" / "r" / "0000009_1009.png").unlink()  # and its thumbnail was not written yet
        (tmp_path / "images" / "r" / "notes.txt").write_text("the user's own file")  # left as it is
        (tmp_path / "images" / "r" / ".x.png.123.tmp").write_bytes(b"half")
        (tmp_path / "thumbs" / "r" / "0000042_7.png").write_bytes(b"stray")  # no row, no image: made from one
        with pytest.raises(CatalogError, match="needs the project lock"):
            cat.repair()  # another writer may be writing those files
        with project_lock(tmp_path, "test"):
            rep = cat.repair()
        assert rep == {**NOTHING, "temp_files": 1, "adopted_files": 1, "unreadable_files": 1, "removed_thumbs": 1}
        assert cat.count() == 2
        row = cat.query(run="r", sort="id")[-1]
        assert (row["item"], row["seed"], row["class_index"], row["prompt"], row["energy"]) == (9, 1009, 3, "p9", -2.0)
        assert (tmp_path / row["thumb"]).exists() and (tmp_path / "images" / "r" / "notes.txt").exists()
        with project_lock(tmp_path, "test"):
            assert cat.repair() == {**NOTHING, "unreadable_files": 1}  # the user's file stays, every time


def test_repair_never_deletes_rows_whose_files_are_missing(tmp_path):
    """A moved images/ folder is not a damaged catalog (issue 26): the rows wait for their files."""
    import shutil

    from prism_gui.engine.data.catalog import describe_repair

    with Catalog(tmp_path) as cat:
        for i in range(5):
            add(cat, "r", i)
        cat.set_status([1, 2], "keep")
        (tmp_path / "images" / "r" / "0000000_1000.png").unlink()
        with project_lock(tmp_path, "test"):
            rep = cat.repair()
        assert rep["missing_files"] == 1 and rep["missing_examples"] == ["images/r/0000000_1000.png"]
        assert "their rows are kept" in describe_repair(rep) and cat.count() == 5
        assert cat.missing_folders() == []
        shutil.move(tmp_path / "images", tmp_path.parent / f"{tmp_path.name}-elsewhere")
        with project_lock(tmp_path, "test"):
            assert cat.repair()["missing_files"] == 5
        assert cat.count() == 5 and cat.count(statuses=["keep"]) == 2
        assert cat.missing_folders() == [(tmp_path / "images", 5)]


def test_repair_keeps_files_of_rows_waiting_in_a_shard_and_merge_is_idempotent(tmp_path):
    from prism_gui.engine.data.image_files import write_image_files
    from prism_gui.engine.data.shards import merge_shards, shard_files, write_shard

    img = np.zeros((8, 8, 1), np.uint8)
    rows = [write_image_files(tmp_path, "r", i, img, class_index=0, class_name="0", prompt="p", seed=i,
                              generator="g", settings={}) for i in range(3)]
    write_shard(tmp_path, "r", 1, rows)
    with Catalog(tmp_path) as cat, project_lock(tmp_path, "test"):
        assert cat.repair()["adopted_files"] == 0  # the shard's files are not orphans
        assert len(merge_shards(cat)) == 3 and not shard_files(tmp_path)
        write_shard(tmp_path, "r", 1, rows)  # merged again (a merge stopped before its delete): nothing new
        assert merge_shards(cat) == [] and cat.count() == 3
        assert cat.repair() == NOTHING


def test_missing_project_is_an_error_when_not_creating(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog(tmp_path / "nope", create=False)


def test_metrics_table(tmp_path):
    t0 = time.time()
    with Catalog(tmp_path) as cat:
        for s in range(5):
            cat.log_metrics("d", s, {"loss": 1.0 / (s + 1), "acc": s / 10}, epoch=s / 2)
        cat.log_metrics("other", 0, {"loss": 9.0})
        steps, vals = cat.metrics("d", "loss")
        assert list(steps) == [0, 1, 2, 3, 4] and list(vals) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
        assert list(cat.metrics("d", "acc")[1]) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
        assert list(cat.metrics("other", "loss")[1]) == [9.0] and len(cat.metrics("d", "nothing")[0]) == 0
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:  # each value with its epoch and the time it was logged
        epochs, times = zip(*db.execute("SELECT epoch, time FROM metrics WHERE run='d' AND key='loss' ORDER BY step"),
                            strict=True)
    assert list(epochs) == [0, 0.5, 1, 1.5, 2] and all(t0 <= t <= time.time() for t in times)


def test_filtered_listings_match_pages_and_use_the_covering_index(tmp_path):
    """A whole filtered listing (the gallery's query) equals its pages joined, and is answered from
    the narrow covering index rather than by row-by-row lookups through the sort column's index."""
    rng = np.random.default_rng(1)
    with Catalog(tmp_path) as cat:
        for i in range(60):
            add(cat, "r", i, k=i % 4, energy=float(rng.normal()), conf=float(rng.random()),
                prompt=f"a {'bold' if i % 3 else 'thin'} digit")
        cat.set_status(cat.ids(classes=[1])[:5], "reject")
        cases = [dict(statuses=["unreviewed"], energy_max=0.0, sort="confidence", descending=True),
                 dict(text="bold", sort="energy"), dict(confidence_min=0.2, confidence_max=0.9, sort="entropy"),
                 dict(classes=[2, 3], energy_min=-0.5, sort="energy")]
        for f in cases:
            whole = cat.ids(**f)
            paged = [i for off in range(0, 60, 7) for i in cat.ids(**f, limit=7, offset=off)]
            assert whole == paged and whole
            q, args = cat._select("id", f["sort"], f.get("descending", False), None, 0,
                                  {k: v for k, v in f.items() if k not in ("sort", "descending")})
            plan = " ".join(r[3] for r in cat._conn.execute("EXPLAIN QUERY PLAN " + q, args))
            assert "COVERING INDEX" in plan, plan


def test_an_id_filter_of_any_length_works(tmp_path):
    """A map selection can hold 100,000 ids: more than SQLite's variables per statement."""
    with Catalog(tmp_path / "p") as cat:
        ids = [cat.add_image("r", i, np.zeros((8, 8, 1), np.uint8), class_index=0, class_name="zero", prompt="p",
                             seed=i, generator="g", settings={}) for i in range(3)]
        many = list(range(10**6, 10**6 + 60_000)) + ids[1:]
        assert cat.count(ids=many) == 2 and cat.ids(ids=many) == ids[1:]
        assert cat.count(ids=[]) == 0


def test_stored_pngs_carry_the_sd_webui_parameters_chunk_that_its_readers_parse(tmp_path):
    """A1111 / Forge "PNG Info" and metadata readers (here sd-parsers, from PyPI) read how each image was made."""
    from sd_parsers import ParserManager

    settings = {"sampler": {"steps": 30, "cfg": 3.0, "scheduler": "dpm++", "eta": 0.0},
                "guidance": {"scale": 0.4, "energy": {"weights": {"class": 1.0}, "temperature": 1.0}}}
    with Catalog(tmp_path / "p") as cat:
        i = cat.add_image("prism", 3, np.zeros((8, 8, 1), np.uint8), class_index=7, class_name="seven",
                          prompt="a thin bold seven, tilted left", negative_prompt="blurry, low quality",
                          seed=30000003, generator="/models/sd, v1.5", settings=settings,
                          score={"energy": 0.125, "energies": {"class": 0.125}})
        path = tmp_path / "p" / cat.get(i)["path"]
    with Image.open(path) as im:
        assert json.loads(im.text["prism"])["seed"] == 30000003  # the catalog's own chunk is still there
        info = ParserManager().parse(im)
    assert info.generator.value == "AUTOMATIC1111"
    s = info.samplers[0]
    assert info.full_prompt == "a thin bold seven, tilted left" and info.full_negative_prompt == "blurry, low quality"
    assert s.name == "DPM++ 2M" and s.parameters == {"steps": "30", "cfg_scale": "3", "seed": "30000003"}
    assert s.model.name == "sd v1.5"  # the folder's name, without the comma readers would split on
    assert info.metadata["PRISM energy"] == "0.125" and info.metadata["PRISM guidance scale"] == "0.4"
    assert info.metadata["PRISM class"] == "seven" and info.metadata["Size"] == "8x8"


def test_any_energy_term_is_stored_sortable_and_filterable(tmp_path):
    """Issue 27: a term registered after the catalog's three energy columns were made (here
    'texture') is stored with the image and sorts, reads and rejects like the built-in ones; a
    name that is not a term is refused, never spliced into SQL."""
    with Catalog(tmp_path) as cat:
        for i, t in enumerate([0.5, 0.1, 0.9, 0.3]):
            img = np.full((8, 8, 1), i, np.uint8)
            cat.add_image("r", i, img, class_index=0, class_name="0", prompt="p", seed=i, generator="digits",
                          settings={}, score={"energy": 1.0, "energies": {"class": 1.0, "texture": t}})
        order = [r["item"] for r in cat.query(sort="energy_texture")]
        assert order == [1, 3, 0, 2]
        assert list(cat.column("energy_texture", sort="energy_texture")) == [0.1, 0.3, 0.5, 0.9]
        cat.reject_beyond(0.4, column="energy_texture")
        assert sorted(r["item"] for r in cat.query(statuses=["reject"])) == [0, 2]
        for bad in ("energy_texture') OR 1=1 --", "energy_", "texture"):
            with pytest.raises(CatalogError, match="cannot sort by"):
                cat.query(sort=bad)
