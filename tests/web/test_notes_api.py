"""A run's notes as items: added, edited and deleted one at a time by id, signed by the token
that added them, without losing notes added elsewhere (saving a page once replaced them all)."""

from __future__ import annotations

import zarr

from recorder.store import annotate, layout
from recorder.store.reader import RunReader
from tests.web.test_ui_sessions import a_run
from tests.web.webhelp import API


def test_add_edit_delete_one_note_each(app, client, control, data):
    run = a_run(app, data)
    r = client.post(f"{API}/runs/{run}/notes", json={"text": "beam at 2 mA"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["author"] == "tests" and first["text"] == "beam at 2 mA"
    assert annotate.NOTE_ID.match(first["id"]) and first["created_ns"] > 0

    # someone else adds a note meanwhile, with another token
    other, _ = control.create_token("ada")
    r = client.post(
        f"{API}/runs/{run}/notes", json={"text": "laser off"},
        headers={"Authorization": f"Bearer {other}"},
    )  # fmt: skip
    second = r.get_json()
    assert second["author"] == "ada"

    # editing the first leaves the second alone
    r = client.patch(f"{API}/runs/{run}/notes/{first['id']}", json={"text": "beam at 3 mA"})
    assert r.status_code == 200 and r.get_json()["updated_ns"] and r.get_json()["id"] == first["id"]
    notes = client.get(f"{API}/runs/{run}").get_json()["notes"]
    assert [(n["text"], n["author"]) for n in notes] == [
        ("beam at 3 mA", "tests"),
        ("laser off", "ada"),
    ]
    assert client.get(f"{API}/runs/{run}/notes").get_json()["notes"] == notes
    # search reads the catalog's copy
    found = client.get(f"{API}/runs?q=3 mA").get_json()["runs"]
    assert [x["run_id"] for x in found] == [run]

    assert client.delete(f"{API}/runs/{run}/notes/{first['id']}").status_code == 204
    assert [n["text"] for n in client.get(f"{API}/runs/{run}").get_json()["notes"]] == ["laser off"]
    assert not client.get(f"{API}/runs?q=3 mA").get_json()["runs"]
    for method in (client.delete, client.patch):
        r = method(f"{API}/runs/{run}/notes/{first['id']}", json={"text": "x"})
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"{API}/runs/{run}/notes/..%2Fx").status_code == 404
    assert client.post(f"{API}/runs/{run}/notes", json={"text": ""}).status_code == 422
    assert client.post(f"{API}/runs/nope/notes", json={"text": "x"}).status_code == 404


def test_old_notes_without_ids_get_stable_ones_kept_on_edit(app, client, data):
    run = a_run(app, data)
    path = data / "runs" / run
    group = zarr.open_group(path, mode="r+", zarr_format=3, use_consolidated=False)
    legacy = [{"created_ns": 5, "text": "old one"}, {"created_ns": 6, "text": "old two"}]
    group.require_group(layout.ANNOTATIONS_GROUP).attrs.put({"tags": [], "notes": legacy})
    ids = [n["id"] for n in client.get(f"{API}/runs/{run}").get_json()["notes"]]
    assert ids == [n["id"] for n in client.get(f"{API}/runs/{run}").get_json()["notes"]]
    assert len(set(ids)) == 2 and all(annotate.NOTE_ID.match(i) for i in ids)

    r = client.patch(f"{API}/runs/{run}/notes/{ids[1]}", json={"text": "old two, edited"})
    assert r.status_code == 200, r.get_json()
    with RunReader(path) as reader:
        stored = reader.annotations()["notes"]
    assert [n["id"] for n in stored] == ids  # written down at the first edit
    assert [n["text"] for n in stored] == ["old one", "old two, edited"]


def test_the_deprecated_replace_keeps_ids_of_notes_it_keeps(app, client, data):
    run = a_run(app, data)
    kept = client.post(f"{API}/runs/{run}/notes", json={"text": "keep"}).get_json()
    r = client.patch(
        f"{API}/runs/{run}",
        json={"notes": [{"text": "keep", "created_ns": kept["created_ns"]}, {"text": "new"}]},
    )
    notes = r.get_json()["notes"]
    assert notes[0] == kept and notes[1]["text"] == "new" and notes[1]["id"] != kept["id"]
    r = client.patch(f"{API}/runs/{run}", json={"note": "appended"})
    assert r.get_json()["notes"][-1]["author"] == "tests"
