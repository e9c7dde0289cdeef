from pathlib import Path

import pytest
import yaml

from core.config import ConfigError
from core.taxonomy import load_taxonomy

BUNDLED = Path(__file__).resolve().parents[1] / "configs" / "taxonomy.yaml"


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "taxonomy.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def _bundled() -> dict:
    return yaml.safe_load(BUNDLED.read_text())


def test_bundled_taxonomy_is_valid(taxonomy):
    assert {"benign", "spam", "scam", "hate", "harassment"} <= set(taxonomy.labels)
    assert taxonomy.benign_label == "benign"
    assert taxonomy.version
    for name, pol in taxonomy.policies.items():
        assert pol.default_action in pol.actions, name
    assert taxonomy.severities["P0"].sla_minutes <= 30


def test_source_label_mapping(taxonomy):
    assert taxonomy.map_source_label("sms_spam", "ham") == "benign"
    assert taxonomy.map_source_label("sms_spam", "spam", "Buy cheap watches now") == "spam"
    assert taxonomy.map_source_label("sms_spam", "spam", "You have WON a guaranteed prize") == "scam"
    assert taxonomy.map_source_label("sms_spam", "spam", "You have W\u200bON a p\u00adrize") == "scam"  # invisible chars
    assert [taxonomy.map_source_label("davidson", c) for c in (0, 1, 2)] == ["hate", "harassment", "benign"]
    assert taxonomy.map_source_label("davidson", 1.0) == "harassment"
    assert taxonomy.map_source_label("no_such_source", "x") is None
    with pytest.raises(KeyError):
        taxonomy.map_source_label("sms_spam", "eggs")


def test_check_decision(taxonomy):
    taxonomy.check_decision("spam", "remove")
    with pytest.raises(ValueError, match="not allowed"):
        taxonomy.check_decision("benign", "suspend_author")
    with pytest.raises(ValueError, match="unknown policy"):
        taxonomy.check_decision("nonsense", "remove")


def test_directory_or_file_path(tmp_path):
    p = _write(tmp_path, _bundled())
    assert load_taxonomy(p).version == load_taxonomy(tmp_path).version


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["policies"]["spam"].update(actions=["remove", "vaporise"]), "policies.spam.actions: unknown action 'vaporise'"),
    (lambda d: d["policies"]["hate"].update(severity="P9"), "policies.hate.severity: unknown tier 'P9'"),
    (lambda d: d["policies"]["spam"].update(default_action="label_x"), "default_action"),
    (lambda d: d["policies"]["benign"].update(violating=True, severity="P3"), "exactly one policy"),
    (lambda d: d["sources"]["davidson"]["labels"].update({"3": "terrorism"}), "sources.davidson.labels.3: unknown policy"),
    (lambda d: d["severities"]["P0"].update(sla_minutes=-5), "severities.P0.sla_minutes"),
    (lambda d: d.pop("version"), "field 'version'"),
    (lambda d: d["escalation"][0].update(patterns=["(unclosed"]), "not a valid regular expression"),
    (lambda d: d["policies"]["spam"].update(colour="red"), "policies.spam.colour"),
])
def test_broken_taxonomy_names_file_and_field(tmp_path, mutate, message):
    data = _bundled()
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_taxonomy(p)
    assert str(p) in str(err.value)
    assert message in str(err.value)


def test_invalid_yaml_reports_line(tmp_path):
    p = _write(tmp_path, "version: 1\npolicies: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_taxonomy(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_taxonomy(tmp_path / "nope.yaml")
