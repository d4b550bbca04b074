"""Every sentence of the student notebooks that says what is graded or accepted is held to the checks (issue 26,
item 4). The declarations and their probes are in tests/graded_claims.py; its docstring says how to add one.

* a graded sentence with no declaration fails (a new promise must come with its probe), except in a chapter of
  ``PENDING_CHAPTERS``, where it is reported;
* a declaration whose key phrase no longer matches a sentence fails (the text moved: the probe may no longer be
  about it);
* every probe grades its implementation with the visible and the hidden checks and must get the promised outcome;
* the pending entries are reported on every run (a warning listing each, with its probes' outcome today).
"""
from __future__ import annotations

import warnings

import pytest

import catalog
import graded_claims as gc
from course_lib.tools.notebooks import chapters

CHAPTERS = chapters()
_, IMPLS = catalog.load_all()


def _impls(chapter: str, probe: gc.Probe) -> list[catalog.Impl]:
    """The catalog implementations a probe names (a label the catalog uses twice names both), as variants when
    the probe appends source."""
    found = [i for i in IMPLS if i.exercise.chapter == chapter and i.exercise.name == probe.exercise
             and i.label == probe.label]
    assert found, f"{chapter}: no catalog implementation of {probe.exercise!r} labelled {probe.label!r}"
    if probe.append or probe.replace:
        found = [catalog.Impl(i.exercise, f"{i.label} + variant", gc.variant_source(i.source, probe), i.mistake)
                 for i in found]
    return found


def _outcome_of(impl: catalog.Impl, probe: gc.Probe) -> tuple[bool, str]:
    graded = catalog.grade(impl)
    if probe.expect == "passes":
        return graded.passed, "full marks" if graded.passed else f"failed: {graded.mistake}: {graded.message[:300]}"
    if probe.expect == "fails":
        if graded.passed:
            return False, "full marks (the sentence promises a failure)"
        ok = probe.mistake is None or graded.mistake == probe.mistake
        return ok, f"failed naming {graded.mistake}"
    from course_lib.checks import CheckFailure

    if probe.expect == "fails_visible":
        try:
            impl.exercise.visible(impl.load())
        except CheckFailure as failure:
            ok = probe.mistake is None or failure.mistake == probe.mistake
            return ok, f"the visible check failed it naming {failure.mistake}"
        return False, "the visible check let it through (the sentence says the check in the notebook shows it)"
    # fails_hidden: the visible check lets it through, the hidden checks fail it

    try:
        impl.exercise.visible(impl.load())
    except CheckFailure as failure:
        return False, f"the visible check already failed it ({failure.mistake}); the sentence says the hidden do"
    return (not graded.passed), ("the hidden checks failed it" if not graded.passed else "full marks")


def outcome(chapter: str, probe: gc.Probe) -> tuple[bool, str]:
    """(does the probe's promise hold for every implementation it names, what happened)."""
    results = [_outcome_of(impl, probe) for impl in _impls(chapter, probe)]
    return all(ok for ok, _ in results), "; ".join(what for _, what in results)


def _matches(key: str, sentence: str) -> bool:
    return gc.normalise(key) in gc.normalise(sentence)


def _declared(chapter: str) -> list:
    return [c for c in gc.CLAIMS if c.chapter == chapter] + [p for p in gc.PENDING if p.chapter == chapter]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_graded_sentence_is_declared(chapter):
    declared = _declared(chapter)
    missing = [s for s in gc.sentences(chapter) if not any(_matches(d.key, s) for d in declared)]
    if chapter in gc.PENDING_CHAPTERS:
        if missing:
            warnings.warn(f"{chapter}: {len(missing)} graded sentence(s) pending a declaration (chapter being "
                          "rewritten):\n" + "\n".join(f"  - {s}" for s in missing), stacklevel=1)
        return
    assert not missing, (f"{chapter}: graded sentences with no declaration in tests/graded_claims.py (add a Claim "
                         "with a probe, or an 'about' saying why it promises nothing):\n" +
                         "\n".join(f"  - {s}" for s in missing))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_declaration_matches_a_sentence(chapter):
    text = gc.sentences(chapter)
    stale = [c.key for c in gc.CLAIMS if c.chapter == chapter and not any(_matches(c.key, s) for s in text)]
    assert not stale, f"{chapter}: declarations whose key phrase matches no graded sentence any more: {stale}"
    stale_pending = [p.key for p in gc.PENDING if p.chapter == chapter and not any(_matches(p.key, s) for s in text)]
    if stale_pending:
        warnings.warn(f"{chapter}: pending entries whose sentence is gone (rewritten?): {stale_pending}", stacklevel=1)


PROBES = [(c, p) for c in gc.CLAIMS for p in c.probes]


@pytest.mark.parametrize("claim, probe", PROBES, ids=[f"{c.chapter}:{c.key[:40]}:{p.label[:30]}" for c, p in PROBES])
def test_probe_keeps_the_sentence(claim, probe):
    ok, what = outcome(claim.chapter, probe)
    assert ok, f"{claim.chapter}: the sentence with {claim.key!r} promises {probe.describe()}; got {what}"


FACTS = [(c, f) for c in gc.CLAIMS for f in c.facts]


@pytest.mark.parametrize("claim, fact", FACTS, ids=[f"{c.chapter}:{f.__name__}" for c, f in FACTS])
def test_fact_keeps_the_sentence(claim, fact):
    fact()


def test_pending_claims_are_reported():
    if not gc.PENDING:
        return
    lines = []
    for p in gc.PENDING:
        results = [f"{probe.describe()}: {'holds' if ok else 'BROKEN'} ({what})"
                   for probe in p.probes for ok, what in [outcome(p.chapter, probe)]]
        lines.append(f"  - {p.chapter}: {p.key!r}" + (f" [{'; '.join(results)}]" if results else ""))
    warnings.warn(f"{len(gc.PENDING)} graded sentence(s) pending (chapters being rewritten), not yet held to a "
                  "probe:\n" + "\n".join(lines), stacklevel=1)


# ---- the test can fail ------------------------------------------------------------------------------------
def test_an_undeclared_promise_and_a_broken_probe_are_caught(monkeypatch):
    """Counter-tests: a new graded sentence in a declared chapter is missing from the table; a probe that
    promises full marks for a wrong implementation, or a named failure for a valid one, is broken."""
    real = gc.sentences
    monkeypatch.setattr(gc, "sentences", lambda ch, root=gc.REPO: real(ch) + ["Any answer is accepted here."])
    with pytest.raises(AssertionError, match="Any answer is accepted here"):
        test_every_graded_sentence_is_declared("01_se")
    assert outcome("01_se", gc.passes("SqueezeExcitation", "bias-free Linear layers (moskomule/senet.pytorch)"))[0] is False
    assert outcome("01_se", gc.fails("SqueezeExcitation", "Linear with bias and einops"))[0] is False
    assert outcome("01_se", gc.fails("SqueezeExcitation", "no sigmoid", "dtype"))[0] is False
    # a mistake only the hidden checks see is not one the visible check shows
    assert outcome("01_se", gc.fails_visible("SqueezeExcitation", "Linear with bias and einops",
                                             append=gc.refuse_channels_last("SqueezeExcitation")))[0] is False
    assert outcome("01_se", gc.fails_visible("SqueezeExcitation", "no sigmoid", "dtype"))[0] is False
    # a variant the visible check already fails is not a hidden-only failure
    assert outcome("01_se", gc.fails_hidden("SqueezeExcitation", "no sigmoid"))[0] is False


def test_a_variant_whose_replacement_no_longer_applies_is_caught():
    """A probe's replacement that is not in the catalog source (the entry was rewritten) fails loudly instead of
    grading the unchanged, valid implementation; one that applies grades the variant."""
    stale = gc.fails("SqueezeExcitation", "Linear with bias and einops", replace=[("no such text", "x")])
    with pytest.raises(AssertionError, match="not in the implementation"):
        outcome("01_se", stale)
    impl, = _impls("02_cbam", gc.fails("CBAM", "channel then spatial", replace=[("self.channel_gate", "self.c")]))
    assert "self.channel_gate" not in impl.source and "self.c(" in impl.source


def test_a_sentence_rewritten_away_from_its_declaration_is_caught(monkeypatch):
    monkeypatch.setattr(gc, "sentences", lambda ch, root=gc.REPO: [])
    with pytest.raises(AssertionError, match="matches no graded sentence"):
        test_every_declaration_matches_a_sentence("01_se")
