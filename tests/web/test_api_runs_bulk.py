"""Tags one or many per request, run-id prefixes as the CLI takes them, and one action on
several runs at once (POST /runs/bulk), on real runs in a real data folder and catalog."""

from __future__ import annotations

import pytest

from recorder.db.jobs import KIND_REPLAY
from tests.e2e.uiworld import a_run
from tests.web.webhelp import API

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def runs(app, data) -> list[str]:
    return [a_run(app, data, f"run {i}") for i in range(3)]


def test_one_tag_or_many_per_request(client, runs):
    r = client.post(f"{API}/runs/{runs[0]}/tags", json={"tags": ["beam", "cal", "beam"]})
    assert r.status_code == 200 and r.get_json()["tags"] == ["beam", "cal"]
    r = client.post(f"{API}/runs/{runs[0]}/tags", json={"tag": "x1"})
    assert r.get_json()["tags"] == ["beam", "cal", "x1"]
    for bad in ({}, {"tag": "a", "tags": ["b"]}, {"tags": []}, {"tags": ["no spaces"]}):
        assert client.post(f"{API}/runs/{runs[0]}/tags", json=bad).status_code == 422, bad


def test_a_unique_prefix_names_the_run_and_an_ambiguous_one_lists_candidates(client, runs):
    a, b = runs[0], runs[1]
    common = 0
    while a[common] == b[common]:
        common += 1
    # the shortest prefix of `a` no other run shares (a third run may share a[: common + 1])
    unique = next(a[:n] for n in range(common + 1, len(a) + 1)
                  if not any(r.startswith(a[:n]) for r in runs if r != a))  # fmt: skip
    got = client.get(f"{API}/runs/{unique}")
    assert got.status_code == 200 and got.get_json()["run_id"] == a
    tagged = client.post(f"{API}/runs/{unique}/tags", json={"tag": "short"}).get_json()
    assert tagged == {"run_id": a, "tags": ["short"]}
    amb = client.get(f"{API}/runs/{a[:common]}")
    assert amb.status_code == 409
    err = amb.get_json()["error"]
    assert err["code"] == "ambiguous" and {a, b} <= set(err["details"]["candidates"])
    assert client.get(f"{API}/runs/zz{a}").status_code == 404
    assert client.get(f"{API}/runs/{a[:common]}_").status_code == 404  # LIKE wildcards are text


def test_strangers_learn_nothing_from_prefixes(anon, runs):
    assert anon.get(f"{API}/runs/{runs[0][:3]}").status_code == 401


def test_the_run_page_takes_a_prefix_too(app, token, runs):
    b = app.test_client()
    b.post("/login", data={"token": token})
    a = runs[0]
    n = next(i for i in range(1, len(a)) if not any(o.startswith(a[:i]) for o in runs[1:]))
    r = b.get(f"/runs/{a[:n]}")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/runs/{a}")


def test_bulk_tag_untag_and_delete(client, runs):
    out = client.post(f"{API}/runs/bulk", json={"action": "tag", "run_ids": runs,
                                                "tags": ["a", "b"]}).get_json()  # fmt: skip
    assert out == {"action": "tag", "done": runs, "failed": []}
    listed = client.get(f"{API}/runs?tag=b").get_json()["runs"]
    assert sorted(r["run_id"] for r in listed) == sorted(runs)
    out = client.post(f"{API}/runs/bulk", json={"action": "untag", "run_ids": runs[:2],
                                                "tags": ["a"]}).get_json()  # fmt: skip
    assert out["done"] == runs[:2]
    assert client.get(f"{API}/runs/{runs[2]}").get_json()["tags"] == ["a", "b"]

    refused = client.post(f"{API}/runs/bulk", json={"action": "delete", "run_ids": runs[:2]})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "confirmation_required"
    body = {"action": "delete", "run_ids": [runs[0], "nosuchrun"], "confirm": 2}
    out = client.post(f"{API}/runs/bulk", json=body).get_json()
    assert out["done"] == [runs[0]]
    assert out["failed"] == [{"run_id": "nosuchrun", "code": "not_found",
                              "message": out["failed"][0]["message"]}]  # fmt: skip
    assert client.get(f"{API}/runs/{runs[0]}").status_code == 404


def test_bulk_delete_leaves_a_run_in_use(client, app, runs):
    control = app.extensions["recorder"].control
    control.create_job(KIND_REPLAY, {"run_id": runs[1]}, run_id=runs[1])
    out = client.post(f"{API}/runs/bulk", json={"action": "delete", "run_ids": runs[1:],
                                                "confirm": 2}).get_json()  # fmt: skip
    assert out["done"] == [runs[2]]
    assert [(f["run_id"], f["code"]) for f in out["failed"]] == [(runs[1], "conflict")]
    assert client.get(f"{API}/runs/{runs[1]}").status_code == 200


def test_bulk_needs_tags_to_tag(client, runs):
    r = client.post(f"{API}/runs/bulk", json={"action": "tag", "run_ids": runs})
    assert r.status_code == 422
