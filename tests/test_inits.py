"""FOCUS and WECHSEL through their real libraries (deepfocus, wechsel, fasttext) on tiny models and the
synthetic cipher language: rows of the right shape and scale, source vectors kept where the library
copies them, one cached init per language shared by the arms, and validation that names what is missing."""

from __future__ import annotations

import copy

import pytest
import torch

from minimodel.experiment import inits
from minimodel.experiment import pipeline
from minimodel.experiment.config import trial_config
from minimodel.experiment.spec import SpecError, validate
from minimodel.text.vocab import shared_tokens, train_tokenizer
from tests.synthetic import cipher
from tests.test_method import tiny
from tests.test_spec import raw  # noqa: F401 - the small valid spec fixture

TINY_VECTORS = {"dim": 16, "epochs": 2, "min_count": 2}


@pytest.fixture(scope="module")
def languages(toy_data):
    """A tiny English MLM, its tokenizer, the cipher language's tokenizer and text, and a dictionary
    file of half the cipher's word pairs (what a FreeDict package gives a real language)."""
    root = toy_data["root"]
    english = (root / "corpus" / "en.txt").read_text().splitlines()
    target_text = (root / "corpus" / "xx.txt").read_text().splitlines()
    model, source = tiny("bert", english)
    dictionary = root / "dict-{lang}.tsv"
    (root / "dict-xx.tsv").write_text("".join(f"{e}\t{c}\n" for e, c in list(cipher().items())[::2]))
    return {
        "model": model,
        "source": source,
        "target": train_tokenizer(source, target_text, 300),
        "texts": target_text,
        "dictionary": str(dictionary),
    }


def config(toy_data, languages, init: str, method: str = "standard", **fasttext) -> dict:
    return trial_config(
        {
            "model": {"name": "scratch", "hidden": 32, "layers": 4, "heads": 2, "ffn": 64, "vocab_size": 300},
            "data": {"source_corpus": toy_data["corpus"], "target_corpus": toy_data["corpus"], "task": toy_data["task"], "max_docs": 3000},
            "adapt": {"language": "xx", "method": method, "init": init, "dictionary": languages["dictionary"]},
            "fasttext": {**TINY_VECTORS, **fasttext},
        }
    )


@pytest.mark.parametrize("init", ["focus", "wechsel"])
def test_library_init_rows_have_the_shape_and_scale_of_the_source(toy_data, languages, tmp_path, init):
    model, source, target = languages["model"], languages["source"], languages["target"]
    cfg = config(toy_data, languages, init)
    weight, bias, copied, cost = pipeline._new_rows(cfg, tmp_path, model, source, target, languages["texts"])
    rows = model.get_input_embeddings().weight.detach()
    assert weight.shape == (len(target), rows.shape[1]) and bias.shape == (len(target),)
    assert torch.isfinite(weight).all()
    new = [i for i in range(len(target)) if i not in copied]
    # new rows are mixes of source rows (FOCUS: convex; WECHSEL: softmax-weighted), so they keep their scale
    assert 0.2 * rows.std() < weight[new].std() < 2 * rows.std()
    assert weight[new].norm(dim=1).max() < 2 * rows.norm(dim=1).max()
    for t, s in copied.items():
        assert torch.equal(weight[t], rows[s]) and bias[t] == model.cls.predictions.bias[s]
    assert bias[new].abs().sum() == 0
    shared = shared_tokens(source, target)
    specials = {target.convert_tokens_to_ids(t) for t in target.all_special_tokens}
    if init == "focus":  # FOCUS copies every token the vocabularies share
        assert copied == shared and len(shared) > len(specials)
    else:  # WECHSEL maps every token through the aligned spaces and copies the special tokens only
        assert set(copied) >= specials
    assert cost["init_s"] > 0 and (cost["init_english_s"] > 0) == (init == "wechsel")


def test_init_is_one_cached_stage_per_language_shared_by_the_arms(toy_data, languages, tmp_path):
    model, source, target = languages["model"], languages["source"], languages["target"]
    cfg = config(toy_data, languages, "focus")
    keys = pipeline.stage_keys(cfg)
    assert keys["init"] == pipeline.stage_keys(config(toy_data, languages, "focus", "minipost"))["init"]
    assert keys["adapt"] != pipeline.stage_keys(config(toy_data, languages, "focus", "minipost"))["adapt"]
    changed = [config(toy_data, languages, "focus", dim=8), config(toy_data, languages, "wechsel")]
    other_seed = copy.deepcopy(cfg)
    other_seed["adapt"]["seed"] = 1  # FOCUS draws its rows without fastText vectors at random
    other_data = copy.deepcopy(cfg)
    other_data["data"]["max_docs"] = 100
    for other in (*changed, other_seed, other_data):
        assert pipeline.stage_keys(other)["init"] != keys["init"]
        assert pipeline.stage_keys(other)["adapt"] != keys["adapt"]
    assert pipeline.stage_keys(config(toy_data, languages, "overlap"))["init"] is None

    first = pipeline._new_rows(cfg, tmp_path, model, source, target, languages["texts"])
    entry = pipeline.stage_dir("init", cfg, tmp_path)
    stamp = (entry / "rows.safetensors").stat().st_mtime_ns
    again = pipeline._new_rows(cfg, tmp_path, model, source, target, languages["texts"])
    assert (entry / "rows.safetensors").stat().st_mtime_ns == stamp  # read, not recomputed
    assert torch.equal(first[0], again[0]) and first[3] == again[3]  # the cost is what computing it took
    assert [p.name for p in (tmp_path / "init").iterdir() if p.is_dir()] == [entry.name]


def test_validate_names_the_language_and_what_to_install(raw, languages):  # noqa: F811
    raw = copy.deepcopy(raw)
    raw["trial"]["adapt"]["init"] = "wechsel"
    with pytest.raises(SpecError) as err:
        validate(raw)
    assert str(err.value) == (
        "trial.adapt.init: wechsel for xx: FreeDict has no English dictionary for xx; "
        "give a file of 'english<TAB>word' lines as trial.adapt.dictionary"
    )
    raw["trial"]["adapt"]["dictionary"] = "/nonexistent/{lang}.tsv"
    with pytest.raises(SpecError, match=r"^trial.adapt.init: wechsel for xx: no dictionary file /nonexistent/xx.tsv$"):
        validate(raw)
    raw["trial"]["adapt"]["dictionary"] = languages["dictionary"]
    assert validate(raw).bases["standard"]["adapt"]["init"] == "wechsel"
    raw["trial"]["adapt"]["init"] = "focus"
    validate(raw)


def test_freedict_package_named_for_a_language_that_has_one(monkeypatch, tmp_path):
    monkeypatch.setattr(inits.freedict, "DICTD_DIR", tmp_path)
    with pytest.raises(
        inits.InitError,
        match="^wechsel for de: no English-de FreeDict dictionary in .*: apt-get install dict-freedict-eng-deu or dict-freedict-deu-eng$",
    ):
        inits.check("wechsel", "de", "")


@pytest.mark.skipif(
    not (inits.freedict.DICTD_DIR / "freedict-eng-rus.index").is_file(),
    reason="dict-freedict-eng-rus is not installed (apt-get install dict-freedict-eng-rus)",
)
def test_freedict_entries_become_single_word_pairs():
    pairs = inits.freedict.word_pairs(inits.freedict.DICTD_DIR / "freedict-eng-rus.index")
    assert ("garden", "сад") in pairs and ("ABC", "алфавит") in pairs  # "азбука, алфавит" split
    assert all(" " not in e and " " not in t for e, t in pairs)  # phrases (African woman) left out
    assert not any(t.startswith(("1.", "/")) for _, t in pairs)  # numbering and pronunciation dropped


@pytest.mark.slow
def test_a_trial_relearns_from_focus_and_reports_its_cost(toy_data, languages, tmp_path):
    """The whole trial on a library init: the spliced rows are the init stage's, and the cost is reported."""
    cfg = config(toy_data, languages, "focus")
    cfg = trial_config(
        {
            **cfg,
            "pretrain": {**cfg["pretrain"], "steps": 20, "batch_size": 16},
            "finetune": {**cfg["finetune"], "steps": 10, "batch_size": 16},
            "data": {**cfg["data"], "seq_len": 32, "max_docs": 500, "max_eval": 20},
            "adapt": {**cfg["adapt"], "vocab_size": 300, "steps": 4, "eval_every": 2, "batch_size": 8, "train_shared": False},
        }
    )
    result = pipeline.run_trial(cfg, tmp_path)
    stats = inits.load(pipeline.stage_dir("init", cfg, tmp_path))[2]
    assert result["init_s"] == stats["init_s"] > 0 and result["overlap_tokens"] == stats["copied_rows"] > 0
    rows, copied, _ = inits.load(pipeline.stage_dir("init", cfg, tmp_path))
    learned = pipeline.load_embeddings(pipeline.stage_dir("adapt", cfg, tmp_path) / "embeddings")[1]
    kept = list(copied)
    # train_shared false: the copied rows keep their source vectors (up to AdamW's decay), the others move
    assert torch.allclose(learned[kept], rows[kept], atol=1e-3)
    assert not torch.allclose(learned, rows)
