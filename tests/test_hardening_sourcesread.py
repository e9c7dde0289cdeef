"""How the shared datasets reach the workbench (`core.sources`, `core.readers`): the Hub copy gave
other ids and texts than the shared file, a Hub that could not be loaded did not say where the
file goes, `HF_HUB_OFFLINE=yes` still probed the network, bad rows vanished without a word,
Davidson vote counts of 1.5 or not adding up to `count` became soft labels, and a header in
another case was reported as if the column were absent. The Hub is always mocked here."""
import datasets
import pytest

from core import sources
from core.readers import IngestError, read_delimited
from core.sources import DataNotFound, load_labelled

SMS = "Label\tSMS\nham\tsee you at 5\nspam\tWIN a prize now\nham\tok thanks\n"
DAVIDSON = (",count,hate_speech,offensive_language,neither,class,tweet\n"
            "0,3,2,1,0,0,first tweet\n"
            "1,3,0,0,3,2,second tweet\n"
            "2,3,0,3,0,1,third tweet\n")


def _write(folder, name, body):
    path = folder / sources.SHARED_DATASETS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    return path


def _hub_copy(name):
    """The Hub copy as `datasets` serves it: ClassLabel labels, SMS lines keeping their newline
    (the Hub loader splits lines without stripping), Davidson without the index column."""
    if name == "sms_spam":
        feats = datasets.Features({"sms": datasets.Value("string"),
                                   "label": datasets.ClassLabel(names=["ham", "spam"])})
        data = {"sms": ["see you at 5\n", "WIN a prize now\n", "ok thanks\n"], "label": [0, 1, 0]}
    else:
        feats = datasets.Features({
            "count": datasets.Value("int64"), "hate_speech_count": datasets.Value("int64"),
            "offensive_language_count": datasets.Value("int64"), "neither_count": datasets.Value("int64"),
            "class": datasets.ClassLabel(names=["hate speech", "offensive language", "neither"]),
            "tweet": datasets.Value("string")})
        data = {"count": [3, 3, 3], "hate_speech_count": [2, 0, 0], "offensive_language_count": [1, 0, 3],
                "neither_count": [0, 3, 0], "class": [0, 2, 1],
                "tweet": ["first tweet", "second tweet", "third tweet"]}
    return datasets.Dataset.from_dict(data, features=feats).to_iterable_dataset()


@pytest.fixture
def online_hub(monkeypatch):
    """A Hub that answers (mocked): no variable says offline and the probe succeeds."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "_hub_reachable", lambda hub_id: True)
    calls = []

    def fake_load(path, split=None, streaming=False, **kw):
        calls.append((path, split, streaming))
        name = {"ucirvine/sms_spam": "sms_spam", "tdavidson/hate_speech_offensive": "davidson"}[path]
        return _hub_copy(name)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    return calls


@pytest.mark.parametrize("name,body", [("sms_spam", SMS), ("davidson", DAVIDSON)])
def test_the_hub_copy_gives_the_same_ids_texts_and_labels_as_the_file(tmp_path, taxonomy, online_hub, name, body):
    # Before: Davidson from the Hub was numbered from 1 (davidson:1..3) and the file from its
    # 0-based index (davidson:0..2); every Hub SMS text ended in "\n". Same dataset, other items.
    _write(tmp_path / "local", name, body)
    local = load_labelled(name, shared_dir=tmp_path / "local", taxonomy=taxonomy)
    hub = load_labelled(name, shared_dir=tmp_path / "empty", taxonomy=taxonomy)
    assert online_hub and online_hub[0][0] == sources.PRESETS[name].hub_id  # the real read_hf path ran
    cols = ["id", "text", "source_label", "policy_label"]
    assert len(local) == 3 and hub[cols].values.tolist() == local[cols].values.tolist()
    assert hub["vote_shares"].tolist() == local["vote_shares"].tolist()
    again = load_labelled(name, shared_dir=tmp_path / "local", taxonomy=taxonomy)
    assert again["id"].tolist() == local["id"].tolist()  # stable across runs


def test_a_hub_that_cannot_be_loaded_names_the_local_path(tmp_path, taxonomy, online_hub, monkeypatch):
    # Before: "ucirvine/sms_spam: cannot load as a Hugging Face dataset: ..." and nothing on where
    # the file could go instead.
    def offline(*a, **kw):
        raise ConnectionError("Couldn't reach 'ucirvine/sms_spam' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataNotFound) as err:
        load_labelled("sms_spam", shared_dir=tmp_path, taxonomy=taxonomy)
    message = str(err.value)
    assert "\n" not in message and "Couldn't reach" in message
    assert str(tmp_path / "sms_spam_collection" / "SMSSpamCollection") in message


@pytest.mark.parametrize("var,value", [("HF_HUB_OFFLINE", "yes"), ("HF_HUB_OFFLINE", "ON"),
                                       ("HF_DATASETS_OFFLINE", "1")])
def test_every_offline_spelling_keeps_the_hub_untouched(tmp_path, monkeypatch, var, value):
    # Before: only "1", "true" and "True" counted, so HF_HUB_OFFLINE=yes probed the network.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv(var, value)

    def no_network(hub_id):
        raise AssertionError("the Hub was probed while offline")

    monkeypatch.setattr(sources, "_hub_reachable", no_network)
    with pytest.raises(DataNotFound) as err:
        sources.locate_dataset("davidson", tmp_path)
    assert f"skipped: {var} is set" in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path / "davidson_hate_offensive" / "labeled_data.csv") in str(err.value)


def test_every_row_left_out_is_listed_on_one_line_naming_file_line_and_field(tmp_path, taxonomy):
    # Before: load_labelled dropped such rows without a trace (a training set smaller than the
    # file, and no way to tell why).
    body = (b"\xef\xbb\xbfLabel\tSMS\r\n"                # a BOM and CRLF line ends: read as usual
            b"ham\tfine one\r\n"                         # line 2: kept
            b"ham\ttoo\tmany\r\n"                        # line 3: three fields
            b"ham\tnul\x00here\r\n"                      # line 4: a NUL byte
            b"spam\tbad \xff\xfe bytes\r\n"              # line 5: not UTF-8
            b"ham\t   \r\n"                              # line 6: empty text
            b"eggs\tunknown label\r\n"                   # line 7: a label not in the mapping
            b"ham\t" + b"x" * 10_000_000 + b"\r\n"       # line 8: a 10 MB cell
            b"spam\tlast one\r\n")                       # line 9: kept
    path = _write(tmp_path, "sms_spam", body)
    df = load_labelled("sms_spam", shared_dir=tmp_path, taxonomy=taxonomy)
    assert df["id"].tolist() == ["sms_spam:1", "sms_spam:8"]  # row numbers: the same on every run
    assert df["text"].tolist() == ["fine one", "last one"]
    skipped = df.attrs["skipped"]
    assert [line.split(" field ")[0] for line in skipped] == [f"{path} line {n}" for n in range(3, 9)]
    assert all("\n" not in line and len(line) < 600 for line in skipped)
    fields = [line.split(" field ")[1].split(":")[0] for line in skipped]
    assert fields == ["'row'", "'SMS'", "'SMS'", "'SMS'", "'Label'", "'SMS'"]
    assert "NUL" in skipped[1] and "UTF-8" in skipped[2] and "missing text" in skipped[3]
    assert "unknown label 'eggs'" in skipped[4] and "MAX_TEXT_CHARS" in skipped[5]


def test_an_unterminated_quote_is_listed_and_the_rows_after_it_kept(tmp_path, taxonomy):
    path = _write(tmp_path, "davidson", DAVIDSON.replace("second tweet", "\"second tweet"))
    df = load_labelled("davidson", shared_dir=tmp_path, taxonomy=taxonomy)
    assert df["id"].tolist() == ["davidson:0", "davidson:2"]
    [line] = df.attrs["skipped"]
    assert line.startswith(f"{path} line 3 field 'tweet': unbalanced quote")


def test_davidson_votes_must_be_whole_and_add_up_to_count(tmp_path, taxonomy):
    # Before: "1.5" votes became a share of 1.5/3, and votes of 3+3+0 under count=3 became
    # shares of 1/2 each: soft labels from annotators that never were.
    path = _write(tmp_path, "davidson", DAVIDSON
                  + "3,3,1.5,1.5,0,1,fourth tweet\n"
                  + "4,3,3,3,0,1,fifth tweet\n")
    df = load_labelled("davidson", shared_dir=tmp_path, taxonomy=taxonomy)
    assert df["policy_label"].tolist() == ["hate", "benign", "harassment", "harassment", "harassment"]
    assert df["vote_shares"][0] == pytest.approx({"hate": 2 / 3, "harassment": 1 / 3})
    assert df["vote_shares"][3] is None and df["vote_shares"][4] is None
    half, over = df.attrs["unreadable_votes"]
    assert half == f"{path} line 5: vote count hate_speech='1.5' is not a whole number"
    assert over == f"{path} line 6: votes hate_speech+offensive_language+neither add up to 6, not count=3"


@pytest.mark.parametrize("header", ["label\tsms", " Label \t SMS "])
def test_a_header_in_another_case_or_with_spaces_is_named_as_such(tmp_path, header):
    # Before: "no column 'Label' in the header (it has 'label', 'sms')": read as a mapping typo.
    path = tmp_path / "x.tsv"
    path.write_text(f"{header}\nham\thi\n", encoding="utf-8")
    with pytest.raises(IngestError) as err:
        list(read_delimited(str(path), "\t", 3, ["Label", "SMS"]))
    first = header.split("\t")[0]
    assert str(err.value) == (f"{path}: no column 'Label' in the header, but column 1 is {first!r} "
                              f"(another case or spaces around it); rename it or map that spelling")


@pytest.mark.parametrize("name,body", [("sms_spam", SMS), ("davidson", DAVIDSON)])
def test_ingest_from_the_hub_stores_the_same_items_as_from_the_file(tmp_path, taxonomy, online_hub, name, body):
    """`workbench ingest --preset P` of the Hub copy and of the shared file: the same item ids and
    texts (before: Davidson ids shifted by one and SMS texts ending in a newline, so the second
    ingest of the same data quarantined every row as a conflict)."""
    from sqlalchemy import select

    from core.ingest import ingest_paths
    from core.schema import Item
    from core.store import open_store

    def stored(path: str, fmt: str, folder: str) -> list[tuple]:
        store = open_store(tmp_path / folder)
        try:
            ingest_paths(store, taxonomy, [path], preset=name, fmt=fmt, progress=False)
            with store.read() as conn:
                return [tuple(r) for r in conn.execute(select(Item.id, Item.text, Item.policy_label)
                                                       .order_by(Item.id)).all()]
        finally:
            store.dispose()

    local = stored(str(_write(tmp_path / "local", name, body)), sources.PRESETS[name].fmt, "a")
    hub = stored(sources.PRESETS[name].hub_id, "hf", "b")
    assert len(local) == 3 and hub == local
