"""Published weights by name (issue 29, :mod:`lightsr.hub`): download, verify, convert, use; offline.

No network: a local HTTP server on 127.0.0.1 (ephemeral port) serves ../shared/weights/reference, and
``LIGHTSR_WEIGHTS_URL_BASE`` points the published entries at it (or one entry's URL is monkeypatched);
``LIGHTSR_CACHE`` is the test's tmp_path. "Offline" is a URL to a port nothing listens on.

Each test was seen to fail with the feature broken on purpose, then pass once restored (see the
report of issue 29): no sha256 comparison after the download (the wrong-checksum test and the
no-Content-Length truncation test failed: files were converted and kept); no Content-Length
comparison (the truncation test's "cut off" assertion failed: the hash caught it instead); the
temporary file not removed on failure ("nothing left" failed on ``.imdn_x4.pth.*.part``); the offline
message without the cache path (the offline test failed); published weights tried before shipped
ones in ``api._shipped_weights`` (the rlfn_s x4 test failed: the cached challenge file was used);
``hub._cached_ok`` always False (the upscale-from-cache test failed: a download from the closed port
was attempted); the CARN-M sha256 mistyped by one digit (the pinned-entries test failed).
"""
from __future__ import annotations

import functools
import json
import re
import shutil
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

import lightsr
from lightsr import hub
from lightsr.checkpoint import read_metadata
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.models import build_model, get_entry, list_models
from lightsr.models.loading import describe

from conftest import BENCHMARK, REFERENCE, need

# (model, scale) -> file in ../shared/weights/reference (named as the cache names them: hub stems)
PUBLISHED = {("imdn", 2): "imdn_x2.pth", ("imdn", 3): "imdn_x3.pth", ("imdn", 4): "imdn_x4.pth",
             ("carn_m", 2): "carn_m.pth", ("carn_m", 3): "carn_m.pth", ("carn_m", 4): "carn_m.pth",
             ("rlfn_s", 4): "rlfn_s_x4.pth", ("hit_srf", 4): "hit_srf_x4.pth",
             ("mambairv2_light", 4): "mambairv2_light_x4.pth"}
IMDN4_SET5 = 32.2047  # weights/reference/README.md, official code, standard protocol


# ------------------------------------------------------------------ servers
class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Truncating(BaseHTTPRequestHandler):
    """Sends half of imdn_x4.pth and closes; with ``send_length`` it announces the full length."""

    send_length = True

    def do_GET(self):  # noqa: N802
        data = (REFERENCE / "imdn_x4.pth").read_bytes()
        self.send_response(200)
        if self.send_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def _serve(handler):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def mirror():
    srv, url = _serve(functools.partial(_Quiet, directory=str(need(REFERENCE))))
    yield url
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache; nothing reaches the network (the default mirror is a closed port)."""
    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LIGHTSR_WEIGHTS_URL_BASE", f"http://127.0.0.1:{_closed_port()}/nothing")
    return tmp_path / "cache" / "weights"


def _use(monkeypatch, base: str) -> None:
    monkeypatch.setenv("LIGHTSR_WEIGHTS_URL_BASE", base)


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("lightsr: error:")]


def _cli(capsys, *argv):
    rc = main([*map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------ the entries
def test_published_entries_are_pinned_and_match_the_reference_files():
    found = {(n, s): p for n in list_models() for s, p in get_entry(n).published.items()}
    assert set(found) == set(PUBLISHED)
    for (name, scale), pub in found.items():
        assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/raw/[0-9a-f]{40}/\S+\.pth", pub.url), pub.url
        assert re.fullmatch(r"[0-9a-f]{64}", pub.sha256) and pub.licence
        assert hub.sha256_file(need(REFERENCE / PUBLISHED[name, scale])) == pub.sha256, (name, scale)
        assert hub.paths(name, scale)[1].name == PUBLISHED[name, scale]  # the cache and mirror name
    assert found["imdn", 4].figures["Set5"] == (IMDN4_SET5, 0.8948)
    assert found["imdn", 4].licence == "no licence file" and found["carn_m", 4].licence == "MIT"


# ------------------------------------------------------------------ download, verify, convert, use
def test_download_verify_convert_reproduces_imdn_x4(cache, mirror, monkeypatch):
    from lightsr.evaluate import evaluate

    _use(monkeypatch, mirror)
    path = hub.fetch("imdn", 4, quiet=True)
    assert path == cache / "imdn_x4.safetensors" and _files(cache) == ["imdn_x4.safetensors"]
    meta = read_metadata(path)
    pub = get_entry("imdn").published[4]
    assert meta["model"] == "imdn" and meta["scale"] == 4 and meta["sha256"] == pub.sha256
    assert meta["source_url"] == pub.url and meta["licence"] == pub.licence
    assert meta["downloaded_from"] == f"{mirror}/imdn_x4.pth"
    model = build_model("imdn", 4, str(path))
    psnr = evaluate(model, [need(BENCHMARK / "Set5")], 4, progress=False)["Set5"]["psnr"]
    assert psnr == pytest.approx(IMDN4_SET5, abs=0.01)
    assert psnr == pytest.approx(pub.figures["Set5"][0], abs=0.01)
    _use(monkeypatch, f"http://127.0.0.1:{_closed_port()}")  # cached now: no network needed
    assert lightsr.load("imdn", scale=4).descriptor.source == str(path)


def test_every_published_file_converts_and_loads_by_name(cache, mirror, monkeypatch):
    _use(monkeypatch, mirror)
    for (name, scale), file in PUBLISHED.items():
        path = hub.fetch(name, scale, quiet=True)
        desc = describe(path)
        meta = read_metadata(path)
        assert desc.model == name and meta["model"] == name
        assert scale in (desc.scale if isinstance(desc.scale, tuple) else (desc.scale,))
        assert meta["sha256"] == hub.sha256_file(REFERENCE / file)
    assert _files(cache) == sorted({f.replace(".pth", ".safetensors") for f in PUBLISHED.values()})
    up = lightsr.load("hit_srf", scale=4)
    assert up.descriptor.model == "hit_srf" and up.descriptor.source == str(cache / "hit_srf_x4.safetensors")
    assert lightsr.load("carn_m", scale=3).native_scale == 3


# ------------------------------------------------------------------ refusals: nothing left behind
def test_wrong_checksum_is_refused_and_nothing_is_kept(cache, mirror, monkeypatch, capsys):
    _use(monkeypatch, mirror)
    entry = get_entry("imdn")
    monkeypatch.setitem(entry.published, 4, replace(entry.published[4], sha256="0" * 64))
    with pytest.raises(LightSRError, match="sha256 e660c382.*not the published 0{64}; nothing was kept"):
        hub.fetch("imdn", 4, quiet=True)
    assert _files(cache) == []
    rc, _, err = _cli(capsys, "weights", "download", "imdn", "--scale", "4")
    assert rc == 2 and len(_errors(err)) == 1 and "sha256" in _errors(err)[0] and "Traceback" not in err
    assert _files(cache) == []


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "no-length"])
def test_truncated_transfer_is_refused_and_nothing_is_kept(cache, monkeypatch, send_length):
    need(REFERENCE / "imdn_x4.pth")
    handler = type("Handler", (_Truncating,), {"send_length": send_length})
    srv, url = _serve(handler)
    try:
        _use(monkeypatch, url)
        with pytest.raises(LightSRError) as info:
            hub.fetch("imdn", 4, quiet=True)
    finally:
        srv.shutdown()
        srv.server_close()
    msg = str(info.value)
    assert "nothing was kept" in msg and "\n" not in msg
    if send_length:  # the byte count says so before any hashing does
        assert "cut off" in msg and f"{2879112 // 2} of 2879112 bytes" in msg
    else:  # no length announced: the sha256 catches it
        assert "sha256" in msg
    assert _files(cache) == []


def test_offline_says_what_to_download_and_where_in_one_line(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LIGHTSR_WEIGHTS_URL_BASE")
    url = f"http://127.0.0.1:{_closed_port()}/IMDN_x4.pth"
    entry = get_entry("imdn")
    monkeypatch.setitem(entry.published, 4, replace(entry.published[4], url=url))
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(img)
    rc, _, err = _cli(capsys, "upscale", img, "-o", tmp_path / "out", "--model", "imdn", "--scale", "4", "-q")
    want = cache / "imdn_x4.pth"
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"download {url} and put it at {want}" in err
    assert not cache.exists() and not (tmp_path / "out").exists()  # nothing created, not even the folder
    with pytest.raises(LightSRError, match=re.escape(str(want))):
        lightsr.load("imdn", scale=4)
    # doing what it says works: the file put there is checked, converted and replaced
    want.parent.mkdir(parents=True)
    shutil.copyfile(need(REFERENCE / "imdn_x4.pth"), want)
    rc, _, err = _cli(capsys, "upscale", img, "-o", tmp_path / "out", "--model", "imdn", "--scale", "4", "-q")
    assert rc == 0, err
    assert _files(cache) == ["imdn_x4.safetensors"]
    # another file there is refused, named, and left for the user to delete
    (cache / "imdn_x4.safetensors").unlink()
    want.write_bytes(b"not the checkpoint")
    with pytest.raises(LightSRError, match=f"{re.escape(str(want))} has sha256 .*; delete it"):
        hub.fetch("imdn", 4)


# ------------------------------------------------------------------ the command line
def test_weights_list_shows_shipped_cached_available(cache, mirror, monkeypatch, capsys):
    _use(monkeypatch, mirror)
    hub.fetch("imdn", 4, quiet=True)
    rc, out, _ = _cli(capsys, "weights", "list")
    assert rc == 0
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()[1:-1]}
    status = {k: re.split(r"\s{2,}", line)[2] for k, line in rows.items()}
    assert status["imdn", "x4"] == "cached" and status["imdn", "x2"] == "available"
    assert status["rlfn_s", "x4"] == "shipped, available" and status["rdb_esa", "x2"] == "shipped"
    assert status["hit_srf", "x4"] == status["mambairv2_light", "x4"] == status["carn_m", "x3"] == "available"
    assert "32.2047 / 28.5819 / 27.5598" in rows["imdn", "x4"] and "(no licence file)" in rows["imdn", "x4"]
    assert "Zheng222/IMDN@8f158e6" in rows["imdn", "x4"] and "(MIT)" in rows["carn_m", "x4"]
    assert ("swinir_light", "x4") not in rows and len(rows) == 19  # 9 published + 11 shipped, rlfn_s x4 both
    assert status["hasn", "x4"] == "shipped"
    assert status["anysr_srno_edsr", "any"] == "shipped"  # a continuous model's one file, for every scale
    assert str(cache) in out.splitlines()[-1]
    rc, out, _ = _cli(capsys, "weights", "list", "imdn", "--json")
    table = json.loads(out)
    assert [(r["model"], r["scale"], r["status"]) for r in table] == [
        ("imdn", 2, ["available"]), ("imdn", 3, ["available"]), ("imdn", 4, ["cached"])]
    assert table[2]["sha256"] == get_entry("imdn").published[4].sha256


def test_weights_download_one_file_for_carn_m_heads(cache, mirror, monkeypatch, capsys):
    _use(monkeypatch, mirror)
    rc, out, err = _cli(capsys, "weights", "download", "carn_m")
    assert rc == 0, err
    assert out.splitlines() == [f"carn_m x{s}: {cache / 'carn_m.safetensors'}" + ("" if s == 2 else " (already cached)")
                                for s in (2, 3, 4)]
    assert err.count("downloading") == 1 and _files(cache) == ["carn_m.safetensors"]
    assert read_metadata(cache / "carn_m.safetensors")["scale"] == [2, 3, 4]
    rc, _, err = _cli(capsys, "weights", "download", "hit_srf", "--scale", "2")
    assert rc == 2 and err.strip() == "lightsr: error: model hit_srf has no published weights for x2 (published: x4)"
    rc, _, err = _cli(capsys, "weights", "download", "swinir_light")
    assert rc == 2 and "no published weights" in err and err.count("\n") == 1


def test_upscale_cli_uses_the_cached_file(cache, mirror, monkeypatch, tmp_path, capsys):
    _use(monkeypatch, mirror)
    hub.fetch("imdn", 4, quiet=True)
    _use(monkeypatch, f"http://127.0.0.1:{_closed_port()}")  # from here on, no download can succeed
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(img)
    rc, _, err = _cli(capsys, "upscale", img, "-o", tmp_path / "named", "--model", "imdn", "--scale", "4", "-q")
    assert rc == 0, err
    rc, _, err = _cli(capsys, "upscale", img, "-o", tmp_path / "file", "--weights", need(REFERENCE / "imdn_x4.pth"), "-q")
    assert rc == 0, err
    named, direct = (np.asarray(Image.open(tmp_path / d / "a.png")) for d in ("named", "file"))
    assert named.shape == (80, 64, 3) and np.array_equal(named, direct)


def test_shipped_weights_win_for_rlfn_s_x4(cache, mirror, monkeypatch):
    shipped = get_entry("rlfn_s").shipped_weights(4)
    assert shipped is not None
    assert lightsr.load("rlfn_s", scale=4).descriptor.source == str(shipped)  # no download tried (closed port)
    _use(monkeypatch, mirror)
    cached = hub.fetch("rlfn_s", 4, quiet=True)  # the challenge entry, cached: still not used by name
    assert hub.status("rlfn_s", 4) == ["shipped", "cached"]
    assert lightsr.load("rlfn_s", scale=4).descriptor.source == str(shipped)
    assert lightsr.load(cached).descriptor.source == str(cached)  # by path it is
