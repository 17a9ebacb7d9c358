import hashlib
import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lm2llm.data import load_documents
from lm2llm.data.download import MIRROR_ENV, RemoteFile, dataset_dir, fetch
from lm2llm.data.sources import registry
from lm2llm.errors import UserError

TEXT = "First Citizen:\n너희는 모두 굶어 죽느니 차라리 죽기로 결심했는가?\n\nAll:\nResolved.\n".encode()
SHA = hashlib.sha256(TEXT).hexdigest()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "input.txt").write_bytes(TEXT)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _leftovers(dataset):
    folder = dataset_dir(dataset)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_caches_and_then_works_offline(server):
    file = RemoteFile(f"{server}/input.txt", SHA, "input.txt")
    path = fetch("demo", file)
    assert path.read_bytes() == TEXT and _leftovers("demo") == ["input.txt"]
    offline = RemoteFile("http://127.0.0.1:9/unreachable", SHA, "input.txt")
    assert fetch("demo", offline) == path  # served from the cache, no network


def test_checksum_mismatch_is_a_clear_error_and_caches_nothing(server):
    with pytest.raises(UserError, match=f"checksum mismatch: expected sha256 {'0' * 64}, got {SHA}"):
        fetch("demo", RemoteFile(f"{server}/input.txt", "0" * 64, "input.txt"))
    assert _leftovers("demo") == []
    with pytest.raises(UserError, match="download failed"):
        fetch("demo", RemoteFile(f"{server}/missing.txt", SHA, "missing.txt"))
    assert _leftovers("demo") == []


def test_unverified_file_is_refused_unless_trusted_then_pinned(server):
    file = RemoteFile(f"{server}/input.txt", None, "input.txt")
    with pytest.raises(UserError, match=f"fetched file has sha256 {SHA}.*--trust-unverified"):
        fetch("demo", file)
    assert _leftovers("demo") == []
    path = fetch("demo", file, trust_unverified=True)
    assert _leftovers("demo") == ["input.txt", "input.txt.sha256"]
    path.write_bytes(TEXT + b"tampered")
    with pytest.raises(UserError, match="cached file does not match its sha256"):
        fetch("demo", file)


def test_mirror_directory_replaces_the_network(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "input.txt").write_bytes(TEXT)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    file = RemoteFile("https://example.invalid/input.txt", SHA, "input.txt")
    assert fetch("demo", file).read_bytes() == TEXT
    with pytest.raises(UserError, match="mirror lacks this file"):
        fetch("other", file)


def test_registered_sets_have_https_urls_licences_and_known_hashes():
    downloads = {name: s for name, s in registry().items() if s.kind == "download"}
    assert {"tinyshakespeare", "nsmc", "ko-chatbot", "alpaca"} <= downloads.keys()
    for source in downloads.values():
        assert source.licence and all(f.url.startswith("https://raw.githubusercontent.com/") for f in source.files)
    assert downloads["tinyshakespeare"].files[0].sha256 and downloads["ko-chatbot"].files[0].sha256


@pytest.mark.parametrize(("dataset", "shared", "first"), [
    ("tinyshakespeare", "tinyshakespeare.txt", "First Citizen:\nBefore we proceed any further, hear me speak."),
    ("ko-chatbot", "ko-chatbot/ChatbotData.csv", "12시 땡!\n하루가 또 가네요."),
    ("instruction-data", "instructions-en/instruction-data.json", "Evaluate the following phrase"),
])
def test_registered_checksums_match_the_verbatim_copies(shared_data, tmp_path, monkeypatch, dataset, shared, first):
    """The shared copies are byte-identical to upstream, so they must pass the registered sha256 via a mirror."""
    file = registry()[dataset].files[0]
    (tmp_path / dataset).mkdir()
    shutil.copy(shared_data / shared, tmp_path / dataset / file.name)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    docs = load_documents(dataset, limit=3)
    assert docs[0].startswith(first)


def test_cli_download_and_prepare_a_public_set_from_a_mirror(cli, shared_data, tmp_path, monkeypatch):
    (tmp_path / "mirror" / "tinyshakespeare").mkdir(parents=True)
    shutil.copy(shared_data / "tinyshakespeare.txt", tmp_path / "mirror" / "tinyshakespeare" / "input.txt")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    result = cli("data", "download", "tinyshakespeare", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)[0]["sha256"] == registry()["tinyshakespeare"].files[0].sha256
    prepared = cli("data", "prepare", "tinyshakespeare", "--out", tmp_path / "ts", "--limit", "300", "--json")
    assert prepared.code == 0, prepared.err
    card = (tmp_path / "ts" / "DATASET.md").read_text(encoding="utf-8")
    assert "karpathy/char-rnn" in card and "public domain" in card
    unknown = cli("data", "download", "python-docs")
    assert unknown.code == 2 and "not a downloadable source" in unknown.err
