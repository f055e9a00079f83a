"""The manifests' YAML writer: whatever the data, a YAML reader gets exactly that data back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftctl.export import yamltext

yaml = pytest.importorskip("yaml", reason="PyYAML (the test extra) reads the YAML back")

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
# Multi-line texts (the cluster file in a ConfigMap, the secrets in a Secret) exercise literal blocks.
lines = st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20), min_size=2, max_size=5)
multiline = lines.map(lambda ls: "\n".join(ls) + "\n")
scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | texts | multiline
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_any_document_reads_back_unchanged(document: object) -> None:
    text = yamltext.dumps(document)
    assert yaml.safe_load(text) == document, text


@given(st.lists(st.dictionaries(texts, scalars, max_size=3), min_size=1, max_size=3))
def test_several_documents_read_back_in_order(documents: list) -> None:
    assert list(yaml.safe_load_all(yamltext.dumps_all(documents))) == documents


def test_multiline_text_is_a_literal_block() -> None:
    text = yamltext.dumps({"data": {"cluster.toml": '[cluster]\nname = "x"\nlist = [\n    1,\n]\n'}})
    assert "cluster.toml: |\n    [cluster]\n" in text
    assert yaml.safe_load(text)["data"]["cluster.toml"].endswith("    1,\n]\n")


def test_words_yaml_would_read_as_booleans_stay_strings() -> None:
    document = {"on": "yes", "n": ["no", "null", "~", "1e3", "0x10"]}
    assert yaml.safe_load(yamltext.dumps(document)) == document
