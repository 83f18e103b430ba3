"""Floors under the detector's accuracy on real data: the first 40 SciFact dev claims and the
perturbations of their supported ones (``bench/grounding_scifact.py`` measures all 300), with
the real embedding model. Floors sit a little below today's numbers so a regression fails."""

from __future__ import annotations

from pathlib import Path

from bench.grounding_scifact import (
    DATA,
    Passages,
    StoredEmbedder,
    by_kind,
    load_claims,
    load_corpus,
    perturbation_cases,
    prepare,
    run,
    scifact_cases,
    score,
)
from processors.intelligence.embeddings import local_embedder
from processors.intelligence.grounding import EvidenceScorer

CLAIMS = 40


def test_scifact_dev_and_perturbations_stay_above_their_floors(tmp_path: Path) -> None:
    assert Path(DATA).is_dir(), f"SciFact is not at {DATA}: set SCIFACT_DATA"
    corpus = load_corpus(DATA)
    claims = load_claims(DATA, "dev")[:CLAIMS]
    embedder = StoredEmbedder(local_embedder(), tmp_path / "vectors.npz")  # one batch, not 400
    passages, scorer = Passages(corpus, embedder), EvidenceScorer()
    scifact, perturbed = scifact_cases(claims), perturbation_cases(claims, corpus)
    prepare(scifact + perturbed, passages, embedder)

    flagged = run(scifact, passages, embedder, scorer)
    balanced = score([not c.supported for c in scifact], flagged).balanced_accuracy
    kinds = by_kind(perturbed, run(perturbed, passages, embedder, scorer))

    assert balanced >= 0.62, balanced
    assert kinds["overall"].f1 >= 0.87, kinds["overall"]
    assert kinds["invalid_citation"].recall == 1.0
