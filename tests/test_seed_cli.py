"""`workbench seed --examples FILE` / `--query TEXT` through the CLI: a good file or query seeds the
items near the examples; every hostile examples file (missing, empty, binary, NUL byte, too big,
too many examples, an overlong line) is refused in one line naming the file and line, no traceback."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from core.config import config_dir
from core.store import open_store
from labeling.cases import build_cases
from labeling.errors import QueueError
from labeling.queue_config import load_queue_config
from labeling.seeding import MAX_EXAMPLE_CHARS, MAX_EXAMPLES, MAX_EXAMPLES_FILE_BYTES, read_examples
from test_queue_support import T0, add_scored
from workbench.cli import cli

SPAM = [f"WINNER! you have won a free prize {i}, call 0906{i:03d} now to claim your cash" for i in range(10)]
CHAT = [f"are we still meeting for lunch at {i} today? see you at the cafe" for i in range(15)] + \
       [f"thanks mum, I got home fine, the train was late by {i} minutes" for i in range(15)]
PRIZE = "congratulations, you won a cash prize! call now to claim it"


@pytest.fixture
def data_dir(tmp_path, taxonomy):
    """A store of spam and chat items, all looking benign to the model, with their cases built."""
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": []})
    data = tmp_path / "data"
    store = open_store(data)
    specs = [{"id": f"s{i}", "label": "benign", "p": 0.97, "text": t} for i, t in enumerate(SPAM)]
    specs += [{"id": f"c{i}", "label": "benign", "p": 0.95, "text": t} for i, t in enumerate(CHAT)]
    add_scored(store, taxonomy, specs)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    store.dispose()
    return data


def _seed(data, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), "seed", "--policy", "spam", "--neighbours", "5",
                                    "--uniform-share", "0", "--max-similarity", "1", *args])


def _seeded(res) -> list[str]:
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # (stderr may carry the embedding model's loading bar)
    assert out["seeded"] == 5
    return [x["item_id"] for x in out["items"]]


def test_examples_file_seeds_the_items_near_the_examples(data_dir, tmp_path):
    """A BOM, CRLF line ends, a comment and blank lines are all fine; the seeds are the spam items."""
    f = tmp_path / "spam.txt"
    f.write_bytes(("\ufeff" + PRIZE + "\r\n# a comment\r\n\r\nfree cash prize, text WIN to claim\r\n").encode())
    assert read_examples(str(f)) == [PRIZE, "free cash prize, text WIN to claim"]  # no BOM glued on
    res = _seed(data_dir, "--examples", str(f), "--json")
    assert json.loads(res.stdout)["examples"] == 2
    assert all(i.startswith("s") for i in _seeded(res))


def test_jsonl_examples_file_with_bom_seeds(data_dir, tmp_path):
    f = tmp_path / "spam.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": PRIZE}).encode() + b"\n")
    assert all(i.startswith("s") for i in _seeded(_seed(data_dir, "--examples", str(f), "--json")))


def test_query_seeds_the_items_near_it(data_dir):
    res = _seed(data_dir, "--query", PRIZE, "--json")
    assert json.loads(res.stdout)["examples"] == 1
    assert all(i.startswith("s") for i in _seeded(res))
    res = _seed(data_dir, "--query", "lunch at the cafe today?", "--json")
    assert all(i.startswith("c") for i in _seeded(res))  # another query, the other neighbours


def _big(f, n: int) -> None:
    with open(f, "wb") as fh:  # sparse where the filesystem allows: never read, refused from its size
        fh.truncate(n)


BAD = {
    "missing": (None, "no such examples file"),
    "empty": (b"", "no examples"),
    "comments only": (b"# nothing yet\n\n   \n", "no examples"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", "line 1: not UTF-8 text"),
    "bad byte on line 3": (b"one\ntwo\nthr\xe9e\n", "line 3: not UTF-8 text"),
    "bad byte after a BOM": (b"\xef\xbb\xbfab\n\xff\n", "line 2: not UTF-8 text (invalid start byte at byte 6)"),
    "NUL byte": (b"one\ntwo\nthr\x00ee\n", "line 3: NUL byte in the example text"),
    "NUL in JSONL": (b'{"text": "ok"}\n{"text": "a\\u0000b"}\n', "line 2, field 'text': NUL byte"),
    "raw NUL in JSONL": (b'{"text": "ok"}\n{"text": "a\x00b"}\n', "line 2: NUL byte in the example text"),
    "invalid JSONL": (b'{"text": "ok"}\n{"text": \n', "line 2: invalid JSON"),
    "JSONL without text": (b'\xef\xbb\xbf{"body": "ok"}\n', "line 1: field 'text' must be a non-empty string"),
    "over the size limit": (_big, f"the limit of an examples file is {MAX_EXAMPLES_FILE_BYTES // 2**20} MiB"),
    "too many examples": ("".join(f"example {i}\n" for i in range(MAX_EXAMPLES + 1)).encode(),
                          f"line {MAX_EXAMPLES + 1}: more than {MAX_EXAMPLES:,} examples"),
    "overlong line": (b"short\n" + b"x" * 1_000_000 + b"\n",
                      f"line 2: example text is 1,000,000 characters, over the limit of {MAX_EXAMPLE_CHARS:,}"),
    "overlong JSONL text": (json.dumps({"text": "y" * (MAX_EXAMPLE_CHARS + 1)}).encode(),
                            f"line 1, field 'text': example text is {MAX_EXAMPLE_CHARS + 1:,} characters"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_hostile_examples_file_is_one_line_error(data_dir, tmp_path, case):
    content, why = BAD[case]
    f = tmp_path / ("ex.jsonl" if "JSONL" in case else "ex.txt")
    if callable(content):
        content(f, 64 << 20)  # 64 MiB
    elif content is not None:
        f.write_bytes(content)
    res = _seed(data_dir, "--examples", str(f))
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:"), res.output
    assert "Traceback" not in res.output and f"{f}" in lines[0] and why in lines[0], lines[0]
    with pytest.raises(QueueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        read_examples(str(f))


def test_size_limit_is_exact(tmp_path):
    """A file of exactly MAX_EXAMPLES_FILE_BYTES is read; one byte more is refused."""
    line = b"z" * 1023 + b"\n"   # 1 KiB an example, well under the character cap
    f = tmp_path / "ex.txt"
    f.write_bytes(line * (MAX_EXAMPLES_FILE_BYTES // len(line) // 8))
    assert len(read_examples(str(f))) == MAX_EXAMPLES_FILE_BYTES // len(line) // 8
    f.write_bytes(b"#" * MAX_EXAMPLES_FILE_BYTES)
    with pytest.raises(QueueError, match="no examples"):
        read_examples(str(f))
    f.write_bytes(b"#" * (MAX_EXAMPLES_FILE_BYTES + 1))
    with pytest.raises(QueueError, match=f"{MAX_EXAMPLES_FILE_BYTES + 1:,} bytes"):
        read_examples(str(f))


@pytest.mark.parametrize("query, why", [("x" * (MAX_EXAMPLE_CHARS + 1), "--query 2: example text is"),
                                        ("a\x00b", "--query 2: NUL byte in the example text")])
def test_hostile_query_is_one_line_error(data_dir, query, why):
    res = _seed(data_dir, "--query", PRIZE, "--query", query)
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:"), res.output
    assert "Traceback" not in res.output and why in lines[0], lines[0]


def test_help_states_the_limits():
    res = CliRunner().invoke(cli, ["seed", "--help"])
    text = " ".join(res.output.split())
    assert f"at most {MAX_EXAMPLES:,} examples of {MAX_EXAMPLE_CHARS:,} characters, " \
           f"{MAX_EXAMPLES_FILE_BYTES // 2**20} MiB" in text


def test_seed_line_says_what_the_learning_share_does_around_the_seeds(data_dir, tmp_path):
    """Without a learning share in the seeded queue the engineer is told how to give it one; with
    one, the line names the share among the seeds (`learning.among_seeds`, capped by the share, or
    `among_seeds_new_surface` for seeds of a source the model never learnt from)."""
    import shutil

    import yaml

    res = _seed(data_dir, "--query", PRIZE)
    assert res.exit_code == 0, res.output
    assert "queue spam has no learning share (queues.yaml learning.queues)" in res.stdout
    conf = tmp_path / "conf"
    shutil.copytree(config_dir(), conf)
    q = yaml.safe_load((conf / "queues.yaml").read_text())
    q["learning"]["queues"]["spam"] = 0.9
    q["learning"].update(among_seeds=0.25, among_seeds_new_surface=None)
    (conf / "queues.yaml").write_text(yaml.safe_dump(q))
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--config-dir", str(conf), "seed", "--policy", "spam",
                                   "--neighbours", "5", "--query", PRIZE])
    assert res.exit_code == 0, res.output
    assert "learning share 90% of queue spam: 25% of its claims while the seeds wait (learning.among_seeds)" \
        in res.stdout
    # The store's model never learnt from the seeds' source (no champion, no labels): a new surface.
    q["learning"]["among_seeds_new_surface"] = 0.5
    (conf / "queues.yaml").write_text(yaml.safe_dump(q))
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--config-dir", str(conf), "seed", "--policy", "spam",
                                   "--neighbours", "5", "--query", PRIZE])
    assert res.exit_code == 0, res.output
    assert ("learning share 90% of queue spam: 50% of its claims while the seeds wait "
            "(learning.among_seeds_new_surface: source test is new to the model)") in res.stdout
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--config-dir", str(conf), "learning", "--queue",
                                   "spam", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["spam"]["seeds"] >= 5
    assert json.loads(res.stdout)["spam"]["new_surface"] == "test"
    res = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--config-dir", str(conf), "learning", "--queue",
                                   "spam"])
    assert res.exit_code == 0 and "cold-start seeds of source test, new to the model" in res.stdout, res.output
