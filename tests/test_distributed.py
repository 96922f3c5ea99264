"""ramh_rt.distributed on a local Ray cluster (2 CPUs, loopback only, started and shut down here)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra (ramh-rt[ray]) is not installed")
pq = pytest.importorskip("pyarrow.parquet")

import ramh_rt  # noqa: E402
from ramh_rt import distributed  # noqa: E402

N_IMAGES = 20
# Ray's start-up, worker processes and model loading take seconds; its own DataContext warns about its options.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")]


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: Ray's start-up takes seconds. Workers import ramh_rt from this tree."""
    pkg_root = str(Path(ramh_rt.__file__).resolve().parents[1])
    path = os.pathsep.join([pkg_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """20 phantom radiographs as PNG files named like RAM-H1200 (side in the stem), and one corrupt file."""
    from PIL import Image

    from ramh_train.phantoms import PhantomConfig, generate

    d = tmp_path_factory.mktemp("archive")
    cfg = PhantomConfig(spacing_mm=(0.3, 0.3))  # ~700 px films: quick to make and to score
    paths = []
    for seed in range(300, 300 + N_IMAGES):
        s = generate(seed, cfg)
        p = d / f"{s.stem}.png"
        Image.fromarray(s.image).save(p)
        paths.append(p)
    bad = d / "broken_R.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return d, paths, bad


@pytest.fixture(scope="module")
def serial(images):
    _, paths, _ = images
    az = ramh_rt.Analyzer(backend="onnxruntime-cpu", keep_image=False)
    return {str(p.resolve()): az.analyze(p) for p in paths}


@pytest.fixture(scope="module")
def first_run(cluster, images, tmp_path_factory):
    d, _, _ = images
    out = tmp_path_factory.mktemp("scores")
    report = distributed.score(d, out, num_workers=2, batch_size=4, backend="onnxruntime-cpu", progress=False)
    return out, report


def test_distributed_matches_serial(first_run, serial, images):
    out, report = first_run
    assert report.inputs == N_IMAGES + 1 and report.scored == N_IMAGES + 1 and report.skipped == 0
    t = distributed.read_scores(out)
    rows = {r["path"]: r for r in t.to_pylist()}
    # The JSON names are `ramh analyze DIR`'s (fs.OutputNames rooted at the folder, every hand suffix claimed).
    from ramh_rt.fs import OutputNames, expand_image_paths

    d, _, _ = images
    inputs = expand_image_paths([d])
    names = OutputNames(out / "json", inputs, root=d)
    want = {str(p.resolve()): names.claim_hands(p, ".json")[""].relative_to(out / "json").as_posix() for p in inputs}
    assert {p: r["json"] for p, r in rows.items() if r["status"] == "ok"} == \
        {p: n for p, n in want.items() if p in serial}
    assert set(serial) <= set(rows)
    for path, a in serial.items():
        r = rows[path]
        assert r["status"] == "ok", r["error"]
        assert (r["erosion"], r["jsn"], r["svdh"], r["severity"]) == (a.totals.erosion, a.totals.jsn,
                                                                        a.totals.svdh, a.totals.severity)
        assert r["expected_svdh"] == pytest.approx(a.totals.expected_svdh, abs=1e-6)
        assert r["side"] == a.meta.side
        ra2 = a.to_ra2_csv_row()
        for col in distributed.RA2_COLUMNS:
            want = ra2.get(col)
            assert r[col] == (None if want in (None, "") else int(want)), col
        saved = json.loads((out / "json" / r["json"]).read_text())
        assert saved["scores"] == a.scores and saved["totals"]["svdh"] == a.totals.svdh
        assert r["analysis_ms"] > 0 and r["wall_ms"] > 0 and r["worker"]


def test_failing_image_is_an_error_row(first_run, images):
    out, report = first_run
    _, _, bad = images
    rows = {r["path"]: r for r in distributed.read_scores(out).to_pylist()}
    r = rows[str(bad.resolve())]
    assert r["status"] == "error" and "ImageLoadError" in r["error"] and r["svdh"] is None
    assert report.failed == 1


def test_rerun_skips_done_and_retries_failures(first_run, images):
    out, _ = first_run
    d, _, bad = images
    before = pq.read_table(out / "scores.parquet").num_rows
    report = distributed.score(d, out, num_workers=1, backend="onnxruntime-cpu", progress=False)
    assert report.skipped == N_IMAGES and report.scored == 1 and report.failed == 1  # only the broken one again
    t = distributed.read_scores(out)
    assert t.num_rows == before  # one row per image: the retried failure replaced its old row
    runs = {r["run_id"] for r in t.to_pylist() if r["path"] == str(bad.resolve())}
    assert len(runs) == 1


def test_dataset_input_skips_done(first_run, images, tmp_path):
    """A Ray Dataset of paths: the hands already scored in ``out`` are dropped by the workers, the rest scored."""
    out, _ = first_run
    _, paths, bad = images
    # paths[0] twice: scored (here skipped) once, named once (claiming its names twice raised ValueError)
    ds = ray.data.from_items([{"path": str(p.resolve())} for p in [*paths[:5], bad, paths[0]]])
    report = distributed.score(ds, out, num_workers=1, backend="onnxruntime-cpu", progress=False)
    assert report.inputs == 6 and report.scored == 1 and report.skipped == 5 and report.failed == 1
    assert distributed.read_scores(out).num_rows == N_IMAGES + 1
    with pytest.raises(distributed.DistributedError, match="'path' column"):
        distributed.score(ray.data.from_items([{"file": "x"}]), tmp_path / "t", progress=False)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="num_workers"):
        distributed.score([], tmp_path, num_workers=0)
    with pytest.raises(distributed.DistributedError, match="no image files"):
        distributed.score(tmp_path, tmp_path / "o", progress=False)
    names = [json.loads(n) for n in distributed.json_names(["/a/b/x_R.png", "/a/c/x_R.png", "/a/c/x.png"],
                                                             tmp_path / "json")]
    assert [n[""] for n in names] == ["b/x_R.json", "c/x_R.json", "c/x~2.json"]  # c/x_R.json is c/x_R.png's
    assert names[2]["_R"] == "c/x~2_R.json" and len({v for n in names for v in n.values()}) == 15


def test_cli_analyze_ray(first_run, images, capsys):
    """``ramh analyze DIR --out OUT --ray`` goes through distributed.score on the running cluster (a rerun here:
    everything done but the broken file, which fails again: exit code 1)."""
    from ramh_rt.cli import main

    out, _ = first_run
    d, paths, _ = images
    rows_before = distributed.read_scores(out).num_rows
    assert main(["analyze", str(d), "--out", str(out), "--ray", "--backend", "onnxruntime-cpu", "--quiet"]) == 1
    assert distributed.read_scores(out).num_rows == rows_before
    # `--ray FOLDER` would take the folder for the cluster address: refused with a usage error
    assert main(["analyze", str(paths[0]), "--ray", str(d), "--out", str(out)]) == 2
    assert "--ray=ADDRESS" in capsys.readouterr().err


def test_a_two_hand_film_gives_a_row_per_hand(cluster, tmp_path):
    """A bilateral film is one image and two rows (column ``hand``), each with its JSON, as the serial
    analyze_hands gives them."""
    from PIL import Image

    from ramh_train.phantoms.variants import make_variant

    v = make_variant("two_hands", 5, masks=False)
    films = tmp_path / "films"
    films.mkdir()
    p = films / "both.png"
    Image.fromarray(v.image).save(p)
    serial = ramh_rt.Analyzer(backend="onnxruntime-cpu", keep_image=False).analyze_hands(p)
    out = tmp_path / "scores"
    report = distributed.score([p], out, num_workers=1, backend="onnxruntime-cpu", progress=False)
    assert report.scored == 1 and report.failed == 0
    rows = sorted(distributed.read_scores(out).to_pylist(), key=lambda r: r["hand"])
    assert len(rows) == len(serial) == 2
    by_side = {a.meta.side: a for a in serial}
    assert [r["hand"] for r in rows] == sorted(by_side) == ["L", "R"]
    for r in rows:
        a = by_side[r["hand"]]
        assert r["status"] == "ok" and (r["svdh"], r["side"]) == (a.totals.svdh, a.meta.side)
        assert json.loads((out / "json" / r["json"]).read_text())["meta"]["hand_box"] == list(a.meta.hand_box)
