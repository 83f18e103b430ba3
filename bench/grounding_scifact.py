"""The grounding detector on SciFact: real claims, perturbed answers, and throughput.

    .venv/bin/python -m bench.grounding_scifact [--data ../shared/data/scifact] [--limit N]
    .venv/bin/python -m bench.grounding_scifact --calibrate   # refit CALIBRATED on train only

Run it with ``OPENBLAS_NUM_THREADS=1``: one sentence at a time is too small a matrix for two
BLAS threads, which then spin against each other on a busy 2-core machine (a single-sentence
embed measured 20 ms with one thread, 100 to 780 ms with two).

Each claim is a one-sentence answer citing the abstracts the claim cites, ``[1]``, ``[2]``...;
it is supported when an abstract SUPPORTs it, unsupported when the evidence CONTRADICTs it or
there is none (not enough info). The perturbation set starts from the supported claims, each
answered from its supporting abstract ``[1]`` with an unrelated abstract offered as ``[2]``, and
changes one thing: a number, a name, a negation, a direction word, or the citation (to ``[2]``,
or to ``[3]``, which was never offered). Perturbations are drawn from a seed per claim, so the
set is the same on every run. Calibration reads train only; numbers are reported on dev (the
test split's labels were never released). Prints numbers only; tests hold the floors."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.scifact_data import scifact_dir
from processors.intelligence.embeddings import Embedder, Vectors, local_embedder
from processors.intelligence.grounding import (
    CALIBRATED,
    FEATURES,
    Calibration,
    Claim,
    EvidenceScorer,
    Judgement,
    Passage,
    Source,
    check_grounding,
    decide,
    measure,
    prepare_passages,
    split_sentences,
    whole_passage,
)

DATA = scifact_dir()
STORE = Path.home() / ".cache" / "llm-platform" / "grounding-scifact-vectors-v2.npz"
KINDS = ("number", "entity", "negation", "direction", "wrong_source", "invalid_citation")
_SEED = 11


@dataclass(frozen=True)
class Case:
    """One answer to check: its text, the abstracts offered as [1], [2]..., and the truth."""

    kind: str  # "claim" for SciFact, "original" or a perturbation kind
    base: int  # the SciFact claim it comes from
    answer: str
    doc_ids: tuple[str, ...]
    supported: bool


def load_corpus(data: Path) -> dict[str, Source]:
    with gzip.open(data / "corpus.jsonl.gz", "rt") as lines:
        docs = [json.loads(line) for line in lines]
    return {d["_id"]: Source(d["_id"], f"{d['title']}\n\n{d['text']}") for d in docs}


@dataclass(frozen=True)
class SciFactClaim:
    id: int
    text: str
    supported_by: tuple[str, ...]  # abstracts with a SUPPORT rationale
    cited: tuple[str, ...]


def load_claims(data: Path, split: str) -> list[SciFactClaim]:
    with (data / f"claims_{split}.jsonl").open() as lines:
        rows = [json.loads(line) for line in lines]
    return [
        SciFactClaim(
            id=row["id"],
            text=row["claim"].rstrip(". "),
            supported_by=tuple(
                doc
                for doc, sets in row["evidence"].items()
                if any(s["label"] == "SUPPORT" for s in sets)
            ),
            cited=tuple(dict.fromkeys(str(doc) for doc in row["cited_doc_ids"])),
        )
        for row in rows
    ]


def scifact_cases(claims: Sequence[SciFactClaim]) -> list[Case]:
    """Each claim citing every abstract it cites: supported when one of them supports it."""
    out = []
    for claim in claims:
        markers = "".join(f"[{i + 1}]" for i in range(len(claim.cited)))
        supported = bool(claim.supported_by)
        out.append(Case("claim", claim.id, f"{claim.text} {markers}.", claim.cited, supported))
    return out


def perturbation_cases(claims: Sequence[SciFactClaim], corpus: dict[str, Source]) -> list[Case]:
    """Each supported claim as it is, and every perturbation that applies to it."""
    pool = sorted({doc for claim in claims for doc in claim.cited})
    names = sorted({n for claim in claims for n in _NAME.findall(claim.text)})
    out = []
    for claim in claims:
        if not claim.supported_by:
            continue
        rng = random.Random(f"{_SEED}-{claim.id}")  # noqa: S311 - reproducible data, not secrets
        distractor = rng.choice([doc for doc in pool if doc not in claim.cited])
        docs, text = (claim.supported_by[0], distractor), claim.text
        folded = corpus[claim.supported_by[0]].text.lower()
        out.append(Case("original", claim.id, f"{text} [1].", docs, True))
        changed = {
            "number": _change_number(text, rng),
            "entity": _swap_name(text, names, folded, rng),
            "negation": _flip_negation(text),
            "direction": _flip_direction(text),
        }
        for kind, perturbed in changed.items():
            if perturbed is not None and perturbed != text:
                out.append(Case(kind, claim.id, f"{perturbed} [1].", docs, False))
        out.append(Case("wrong_source", claim.id, f"{text} [2].", docs, False))
        out.append(Case("invalid_citation", claim.id, f"{text} [3].", docs, False))
    return out


_NAME = re.compile(r"\b(?:[A-Z]{2,}[A-Za-z0-9\-]*|[A-Za-z]+\d[\w\-]*)\b")
_NUMBER = re.compile(r"(?<![\w.\-])\d+(?:\.\d+)?(?![\w\-])")
_AUXILIARY = re.compile(r"\b(is|are|was|were|can|could|may|might|will|would|should|has|have|had)\b")
_VERB = re.compile(r"\b([a-z]+?)(es|s)\b")
_NEGATED = re.compile(r"\b(?:does not|do not|did not|not|no longer)\s+")
_OPPOSITES = {
    "increase": "decrease", "increases": "decreases", "increased": "decreased",
    "increasing": "decreasing", "higher": "lower", "more": "less", "greater": "smaller",
    "reduces": "increases", "reduced": "increased", "reduce": "increase", "lowers": "raises",
    "improves": "worsens", "improved": "worsened", "promotes": "inhibits", "inhibits": "promotes",
    "enhances": "suppresses", "suppresses": "enhances", "activates": "inhibits", "positive":
    "negative", "negative": "positive", "upregulates": "downregulates", "downregulates":
    "upregulates", "elevated": "reduced", "risk": "chance",
}  # fmt: skip
_OPPOSITES.update({v: k for k, v in list(_OPPOSITES.items()) if v not in _OPPOSITES})
_OPPOSITES.pop("risk")
_OPPOSITES.pop("chance", None)


def _change_number(text: str, rng: random.Random) -> str | None:
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    match = rng.choice(found)
    value = float(match.group())
    decimals = len(match.group().partition(".")[2])
    new = rng.choice([value * 2, value + rng.randint(1, 9), value * 3 + 1])
    return f"{text[: match.start()]}{new:.{decimals}f}{text[match.end() :]}"


def _swap_name(text: str, names: list[str], folded: str, rng: random.Random) -> str | None:
    found = list(_NAME.finditer(text))
    if not found:
        return None
    match = rng.choice(found)
    others = [n for n in names if n.lower() not in folded and n.lower() not in text.lower()]
    return f"{text[: match.start()]}{rng.choice(others)}{text[match.end() :]}"


def _flip_negation(text: str) -> str | None:
    if _NEGATED.search(text):
        return _NEGATED.sub("", text, count=1)
    if _AUXILIARY.search(text):
        return _AUXILIARY.sub(r"\1 not", text, count=1)
    for verb in _VERB.finditer(text):
        if verb.start() > 0 and verb.group(1) + verb.group(2) in _OPPOSITES:
            stem = verb.group(1) + (
                "e" if verb.group(2) == "es" and verb.group(1)[-1] in "c" else ""
            )
            return f"{text[: verb.start()]}does not {stem}{text[verb.end() :]}"
    return None


def _flip_direction(text: str) -> str | None:
    words = re.split(r"(\W+)", text)
    for i, word in enumerate(words):
        if word.lower() in _OPPOSITES:
            words[i] = _OPPOSITES[word.lower()]
            return "".join(words)
    return None


class StoredEmbedder:
    """An ``Embedder`` that remembers every vector in a file: the abstracts' 40,000 sentences
    take minutes to embed on 2 cores, and the accuracy runs need them again and again. The
    throughput measurement never uses it."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.name, self.dimension = inner.name, inner.dimension
        self._inner, self._path = inner, path
        self._known: dict[str, Vectors] = {}  # by the text's digest: abstracts are long
        if path.exists():
            with np.load(path) as stored:
                self._known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))

    def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        new = {key: text for key, text in zip(keys, texts, strict=True) if key not in self._known}
        self._known.update(zip(new, self._inner.embed(list(new.values())), strict=True))
        if len(new) > 1:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            vectors = np.stack(list(self._known.values()))
            np.savez(self._path, keys=np.array(list(self._known)), vectors=vectors)
        return np.stack([self._known[key] for key in keys]) if texts else self._inner.embed([])


def prepare(cases: Sequence[Case], passages: Passages, embedder: Embedder) -> None:
    """Every abstract and every answer sentence embedded up front, in large batches."""
    passages.offered(doc for case in cases for doc in case.doc_ids)
    embedder.embed([s.claim for case in cases for s in split_sentences(case.answer)])


class Passages:
    """Abstracts prepared once per process: many answers cite the same one."""

    def __init__(self, corpus: dict[str, Source], embedder: Embedder, whole: bool = False) -> None:
        self._corpus = corpus
        self._embedder = embedder
        self._whole = whole  # one vector per abstract, as retrieval holds for a chunk
        self._ready: dict[str, Passage] = {}

    def offered(self, doc_ids: Iterable[str]) -> dict[int, Passage]:
        """The abstracts numbered from 1, each split and embedded on first use."""
        docs = list(doc_ids)
        missing = [self._corpus[doc] for doc in dict.fromkeys(docs) if doc not in self._ready]
        if self._whole:
            vectors = self._embedder.embed([source.text for source in missing])
            prepared = [whole_passage(s, v) for s, v in zip(missing, vectors, strict=True)]
        else:
            prepared = prepare_passages(missing, self._embedder)
        for passage in prepared:
            self._ready[passage.source_id] = passage
        return {i + 1: self._ready[doc] for i, doc in enumerate(docs)}


@dataclass(frozen=True)
class Score:
    n: int
    precision: float
    recall: float
    f1: float
    balanced_accuracy: float


def score(truth: Sequence[bool], flagged: Sequence[bool]) -> Score:
    """Detection of unsupported answers: ``truth`` and ``flagged`` say "unsupported"."""
    t, f = np.array(truth, dtype=bool), np.array(flagged, dtype=bool)
    tp, fp, fn = int((t & f).sum()), int((~t & f).sum()), int((t & ~f).sum())
    tn = int((~t & ~f).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    return Score(len(t), precision, recall, f1, (recall + specificity) / 2 if tn + fp else recall)


def run(
    cases: Sequence[Case], passages: Passages, embedder: Embedder, scorer: EvidenceScorer
) -> list[bool]:
    """Whether the detector flags each case's answer as unsupported."""
    return [
        bool(check_grounding(c.answer, passages.offered(c.doc_ids), embedder, scorer).unsupported)
        for c in cases
    ]


def by_kind(cases: Sequence[Case], flagged: Sequence[bool]) -> dict[str, Score]:
    """Each perturbation kind against the originals it was made from; the four that change
    the words (the citation kinds are the easy part); and all of them."""
    groups = {kind: (kind,) for kind in KINDS} | {"content": KINDS[:4], "overall": KINDS}
    out = {}
    for name, kinds in groups.items():
        bases = {c.base for c in cases if c.kind in kinds}
        chosen = [
            i for i, c in enumerate(cases) if c.base in bases and c.kind in (*kinds, "original")
        ]
        out[name] = score([not cases[i].supported for i in chosen], [flagged[i] for i in chosen])
    return out


class _Recorder:
    """A ``SupportScorer`` that keeps each claim's features, for calibration."""

    def __init__(self) -> None:
        self.rows: list[npt.NDArray[np.float64]] = []

    def judge(self, claims: Sequence[Claim]) -> list[Judgement]:
        for claim in claims:
            self.rows.append(measure(claim)[0])
        return [Judgement(1.0, True, (), None) for _ in claims]


def calibrate(
    groups: Sequence[Sequence[Case]], passages: Passages, embedder: Embedder
) -> Calibration:
    """A logistic model fitted on the cases (each group, class and kind weighing the same), then
    the threshold and the contradiction gate with the best weighted balanced accuracy. Invalid
    citations are left out: the detector rejects them before scoring. An answer the splitter
    cuts in two is judged by its least similar sentence."""
    rows: list[npt.NDArray[np.float64]] = []
    labels, weights = [], []
    for group in groups:
        kept = [c for c in group if c.kind != "invalid_citation"]
        count = Counter((c.supported, c.kind) for c in kept)
        kinds = Counter(supported for supported, _ in count)
        for case in kept:
            recorder = _Recorder()
            check_grounding(case.answer, passages.offered(case.doc_ids), embedder, recorder)
            rows.append(min(recorder.rows, key=lambda row: float(row[0])))
            labels.append(float(case.supported))
            weights.append(
                1.0 / (2 * len(groups) * kinds[case.supported] * count[case.supported, case.kind])
            )
    x, y, w = np.array(rows), np.array(labels), np.array(weights)
    coef, bias = _fit(x, y, w)
    fitted = Calibration(tuple(round(float(c), 3) for c in coef), round(bias, 3), 0.5, 1.01)

    def accuracy(calibration: Calibration) -> float:
        verdicts = np.array([decide(row, calibration)[1] for row in x])
        return float((w * (verdicts == (y == 1))).sum())

    thresholds = [round(float(t), 2) for t in np.linspace(0.05, 0.95, 91)]
    fitted = max((replace(fitted, threshold=t) for t in thresholds), key=accuracy)
    gates = [1.01, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7]  # 1.01: never; ties keep the higher gate
    return max((replace(fitted, contradiction=g) for g in gates), key=accuracy)


def _fit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """Weighted logistic regression by Newton's method, with a little L2 to keep it finite."""
    design = np.hstack([x, np.ones((len(x), 1))])
    theta = np.zeros(design.shape[1])
    ridge = np.eye(design.shape[1]) * 1e-3
    ridge[-1, -1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(design @ theta)))
        gradient = design.T @ (w * (p - y)) + ridge @ theta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + ridge
        theta -= np.linalg.solve(hessian, gradient)
    return theta[:-1], float(theta[-1])


def throughput(
    cases: Sequence[Case], corpus: dict[str, Source], embedder: Embedder, cached: bool
) -> float:
    """Answers per second; with ``cached`` the abstracts are prepared before the clock starts,
    as retrieved chunks' vectors would be, otherwise each answer prepares its own."""
    passages = Passages(corpus, embedder)
    if cached:
        for case in cases:
            passages.offered(case.doc_ids)
    scorer = EvidenceScorer()
    start = time.perf_counter()
    for case in cases:
        offered = (
            passages.offered(case.doc_ids)
            if cached
            else dict(
                enumerate(prepare_passages([corpus[d] for d in case.doc_ids], embedder), start=1)
            )
        )
        check_grounding(case.answer, offered, embedder, scorer)
    return len(cases) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N claims of each split")
    parser.add_argument("--calibrate", action="store_true", help="fit CALIBRATED on train")
    parser.add_argument("--answers", type=int, default=200, help="answers timed per mode")
    parser.add_argument("--store", type=Path, default=STORE, help="vectors kept between runs")
    args = parser.parse_args()
    corpus = load_corpus(args.data)
    model = local_embedder()
    model.embed(["warm-up"])
    embedder = StoredEmbedder(model, args.store)
    passages = Passages(corpus, embedder)
    if args.calibrate:
        train = load_claims(args.data, "train")[: args.limit]
        groups = [scifact_cases(train), perturbation_cases(train, corpus)]
        prepare([case for group in groups for case in group], passages, embedder)
        print(calibrate(groups, passages, embedder))
        return
    dev = load_claims(args.data, "dev")[: args.limit]
    scorer = EvidenceScorer(CALIBRATED)
    claims = scifact_cases(dev)
    perturbed = perturbation_cases(dev, corpus)
    prepare(claims + perturbed, passages, embedder)
    whole = Passages(corpus, embedder, whole=True)

    def judged(cases: Sequence[Case], offered: Passages) -> Score:
        return score([not c.supported for c in cases], run(cases, offered, embedder, scorer))

    flagged = run(perturbed, passages, embedder, scorer)
    rows = [
        ("SciFact dev claims", judged(claims, passages)),
        *((f"perturbed: {kind}", s) for kind, s in by_kind(perturbed, flagged).items()),
        ("SciFact dev claims, one vector per abstract", judged(claims, whole)),
    ]
    print("| set (dev; positive = unsupported) | n | precision | recall | F1 | balanced acc. |")
    print("|---|---|---|---|---|---|")
    for name, s in rows:
        cells = (s.precision, s.recall, s.f1, s.balanced_accuracy)
        print(f"| {name} | {s.n} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    answers = (claims + perturbed)[: args.answers]
    for cached in (True, False):
        rate = throughput(answers, corpus, model, cached)
        mode = "pre-embedded" if cached else "embedded per answer"
        print(f"throughput, sources {mode}: {rate:.1f} answers/s over {len(answers)} answers")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"features: {', '.join(FEATURES)}")


if __name__ == "__main__":
    main()
