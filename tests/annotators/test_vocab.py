"""The closed vocabulary: Ego4D-style narrations parsed, counted, clustered with the real embedder."""

from __future__ import annotations

import pytest

from hiw.annotators.embed import load_embedder
from hiw.annotators.vocab import (
    DEFAULT_SIMILARITY,
    VOCAB_VERSION,
    ParsedNarration,
    Vocabulary,
    build_vocabulary,
    load_vocabulary,
    parse_narration,
    read_narrations,
)
from hiw.errors import ConfigError

NARRATIONS = [
    "#C C opens the fridge",
    "#C C opens the fridge",
    "#C C takes out a bottle of milk from the refrigerator",
    "#C C closes the fridge",
    "#C C picks up a knife from the table",
    "#C C picks up the onion",
    "#C C cuts the onion",
    "#C C cuts the red onions into small pieces",
    "#C C slices the tomato on the chopping board",
    "#C C puts down the knife",
    "#C C puts the knife down",
    "#C C washes the plate in the sink",
    "#C C rinses the cup under the tap",
    "#C C turns on the tap",
    "#C C turns on the tap",
    "#C C switches on the tap",
    "#C C turns the tap off",
    "#C C wipes the plate with a sponge",
    "#C C picks up the phone",
    "#C C picks up the phone",
    "#C C scrolls the cellphone",
    "#C C opens the drawer",
    "#C C closes the drawer",
    "#O A man X opens the door",
    "#C C puts the cup on the table",
    "#C C stirs the soup in the pot with a spoon",
    "#C C pours water into the kettle",
    "#C C picks a piece of cloth",
    "#unsure",
    "#C C looks around",
    "#C C holds the pan with his left hand",
    "#O woman Y gives the bowl to C",
    "#C C peels the potato",
    "#C C places the lid of the pot on the countertop",
    "#C C rinses the leaves in the bowl",
]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.fixture(scope="module")
def vocab(embedder) -> Vocabulary:
    return build_vocabulary(NARRATIONS, embedder, source="test narrations")


@pytest.mark.parametrize(
    "text, verb, objects",
    [
        ("#C C cuts the onion", "cut", ("onion",)),
        ("#C C picks up a knife from the table", "pick up", ("knife", "table")),
        ("#O A man X opens the fridge", "open", ("fridge",)),
        ("#C C puts the cup on the table", "put", ("cup", "table")),
        ("C wipes the plate with a sponge", "wipe", ("plate", "sponge")),
        ("#C C looks around", "look around", ()),
        ("#C C puts the knife down", "put down", ("knife",)),
        ("#C C picks it up again", "pick up", ()),
        ("#C C turns the tap off", "turn off", ("tap",)),
        ("#C C picks a piece of cloth", "pick", ("cloth",)),
        ("#C C cuts the red onions into small pieces", "cut", ("onion",)),
        ("#C C places the lid of the pot on the counter", "place", ("lid", "pot", "counter")),
        ("#C C opens the fridge and takes out the milk", "open", ("fridge",)),
        ("#C C picks a knife and a fork from the drawer", "pick", ("knife", "fork", "drawer")),
        ("#O woman Y gives the bowl to C", "give", ("bowl",)),
        ("#C C stirs the soup in the pot with a spoon #unsure", "stir", ("soup", "pot", "spoon")),
        ("#C C rinses the leaves in the bowl", "rinse", ("leaf", "bowl")),
        ("#C C moves the cup a bit", "move", ("cup",)),
        ("#C C drops the knife in front of the sink", "drop", ("knife", "sink")),
        ("#C C PICKS UP TWO TOMATOES", "pick up", ("tomato",)),
    ],
)
def test_parse_narration(text, verb, objects):
    assert parse_narration(text) == ParsedNarration(verb, objects)


@pytest.mark.parametrize("text", ["#unsure", "", "   ", "#C C", "#C C 2"])
def test_unparseable_narrations_have_no_verb(text):
    assert parse_narration(text) == ParsedNarration(None, ())


def test_without_embedder_every_lemma_is_its_own_canonical():
    v = build_vocabulary(NARRATIONS, None)
    assert all(k == c for k, c in v.verbs.items()) and all(k == c for k, c in v.objects.items())
    assert v.verb_counts["open"] == 4 and v.verb_counts["pick up"] == 4 and v.verb_counts["put down"] == 2
    assert v.object_counts["fridge"] == 3 and v.object_counts["tap"] == 5
    assert "piece" not in v.objects and None not in v.verbs
    assert v.normalise_verb("Picks up") == "pick up"
    assert v.normalise_verb("kneads") is None
    assert v.normalise_object("the red Onions") == "onion"
    assert v.normalise_object("leaves") == "leaf"
    assert v.normalise_object("giraffe") is None


def test_threshold_separates_real_synonyms_from_antonyms(embedder):
    """The evidence behind DEFAULT_SIMILARITY: MiniLM cosine of the bare lemmas."""
    synonyms = [("turn on", "switch on"), ("fridge", "refrigerator"), ("phone", "cellphone")]
    apart = [("open", "close"), ("pick up", "put down"), ("cut", "wash"), ("onion", "knife"), ("hand", "finger")]
    for a, b in synonyms + apart:
        rows = embedder.encode([a, b])
        similar = float(rows[0] @ rows[1]) >= DEFAULT_SIMILARITY
        assert similar == ((a, b) in synonyms), (a, b)


def test_synonyms_merge_to_the_most_frequent_member(vocab):
    assert vocab.verbs["switch on"] == vocab.verbs["turn on"] == "turn on"  # 2 x "turn on", 1 x "switch on"
    assert vocab.objects["refrigerator"] == vocab.objects["fridge"] == "fridge"
    assert vocab.objects["cellphone"] == vocab.objects["phone"] == "phone"
    assert vocab.normalise_verb("switches on") == "turn on"
    assert vocab.normalise_object("the Refrigerator") == "fridge"
    assert "switch on" not in vocab.canonical_verbs() and "turn on" in vocab.canonical_verbs()
    assert vocab.canonical_objects() == sorted(vocab.canonical_objects())


@pytest.mark.parametrize(
    "kind, a, b",
    [
        ("verbs", "open", "close"),
        ("verbs", "pick up", "put down"),
        ("verbs", "cut", "wash"),
        ("verbs", "turn on", "turn off"),
        ("verbs", "put", "put down"),
        ("objects", "onion", "knife"),
        ("objects", "plate", "cup"),
        ("objects", "drawer", "door"),
    ],
)
def test_distinct_actions_and_objects_stay_apart(vocab, kind, a, b):
    mapping = getattr(vocab, kind)
    assert a in mapping and b in mapping
    assert mapping[a] != mapping[b]


def test_other_particle_never_merges_even_at_a_loose_threshold(embedder):
    v = build_vocabulary(["#C C turns on the tap", "#C C turns the tap off", "#C C switches on the light"], embedder, 0.6)
    assert v.verbs["turn on"] == v.verbs["switch on"]
    assert v.verbs["turn off"] == "turn off"


def test_ties_are_broken_alphabetically(embedder):
    v = build_vocabulary(["#C C opens the fridge", "#C C opens the refrigerator"], embedder)
    assert v.objects == {"fridge": "fridge", "refrigerator": "fridge"}


def test_save_load_round_trip_and_id(vocab, tmp_path):
    path = tmp_path / "sub" / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.id == vocab.id and loaded.version == VOCAB_VERSION
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temp file left
    same = build_vocabulary(NARRATIONS, load_embedder(), source="elsewhere")
    assert same.id == vocab.id  # content, not provenance
    fewer = build_vocabulary(NARRATIONS[:-1], load_embedder())
    assert fewer.id != vocab.id
    assert len(vocab.id) == 16


def test_empty_vocabulary_is_falsy():
    v = build_vocabulary(["#unsure", ""], None)
    assert not v and len(v) == 0 and v.canonical_verbs() == []
    assert build_vocabulary(["#C C cuts the onion"], None)


def test_bad_similarity_is_a_config_error():
    with pytest.raises(ConfigError):
        build_vocabulary(NARRATIONS, None, similarity=0.0)


def test_read_narrations_txt_and_manifest_csv(tmp_path):
    txt = tmp_path / "n.txt"
    txt.write_text("#C C cuts the onion\n\n#C C puts the knife down\n")
    assert read_narrations(txt) == ["#C C cuts the onion", "#C C puts the knife down"]
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "video,start_s,end_s,text\n"
        "P01/kitchen.mp4,12.0,15.5,#C C cuts the onion\n"
        'P01/kitchen.mp4,15.5,19.0,"#C C picks up the cup, then drinks"\n'
        "P02/desk.mp4,,,\n"
    )
    assert read_narrations(csv) == ["#C C cuts the onion", "#C C picks up the cup, then drinks"]


def test_read_narrations_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_narrations(tmp_path / "missing.txt")
    no_text = tmp_path / "m.csv"
    no_text.write_text("video,start_s,end_s\nP01/a.mp4,0,1\n")
    with pytest.raises(ConfigError, match="'text' column"):
        read_narrations(no_text)
    other = tmp_path / "n.tsv"
    other.write_text("x")
    with pytest.raises(ConfigError):
        read_narrations(other)


def test_load_vocabulary_builds_from_narrations_or_reads_json(tmp_path, vocab):
    calls = []

    def factory():
        calls.append(1)
        return load_embedder()

    txt = tmp_path / "narrations.txt"
    txt.write_text("\n".join(NARRATIONS))
    built = load_vocabulary(txt, factory)
    assert calls == [1] and built.id == vocab.id
    assert built.source == f"{len(NARRATIONS)} narrations from narrations.txt"

    def no_factory():
        raise AssertionError("a saved vocabulary needs no embedder")

    saved = tmp_path / "vocab.json"
    built.save(saved)
    assert load_vocabulary(saved, no_factory) == built
    with pytest.raises(ConfigError):
        load_vocabulary(tmp_path / "absent.json", no_factory)
    (tmp_path / "bad.json").write_text('{"verbs": {}}')
    with pytest.raises(ConfigError, match="not a vocabulary"):
        load_vocabulary(tmp_path / "bad.json", no_factory)
