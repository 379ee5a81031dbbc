"""How long find_duplicates takes on a million short texts, and what it finds of the planted copies.

Generates ``--n-train`` short texts (8-16 words from a 20,000-word Zipf vocabulary) and ``--n-val``
validation texts, of which ``--planted`` are exact copies of training texts (case and spacing changed) and
as many are near copies (punctuation added, or one word appended to a 16-word text: Jaccard 12/13 of word
5-grams). Prints the time of the exact pass alone and of exact + near (MinHash LSH), throughput, peak
memory, and recall/precision on the planted pairs.

    python benchmarks/data_duplicates.py                    # 1,000,000 train x 50,000 val
    python benchmarks/data_duplicates.py --n-train 100000   # a quick look
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time

from fitwatch.data import find_duplicates


def make_texts(n: int, rng: random.Random, vocab: list[str], weights: list[float]) -> list[str]:
    lengths = [rng.randint(8, 16) for _ in range(n)]
    words = rng.choices(vocab, weights=weights, k=sum(lengths))
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(words[at : at + length]))
        at += length
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-train", type=int, default=1_000_000)
    parser.add_argument("--n-val", type=int, default=50_000)
    parser.add_argument(
        "--planted", type=int, default=500, help="exact copies planted (and as many near copies)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    vocab = [f"w{i}" for i in range(20_000)]
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]  # Zipf's law, like word frequencies
    t0 = time.perf_counter()
    train = make_texts(args.n_train, rng, vocab, weights)
    val = make_texts(args.n_val, rng, vocab, weights)
    exact_truth, near_truth = set(), set()
    slots = rng.sample(range(args.n_val), 2 * args.planted)
    sources = rng.sample(range(args.n_train), 2 * args.planted)  # distinct, so no plant overwrites another
    for i, j in zip(sources, slots[: args.planted]):
        val[j] = "  " + train[i].upper().replace(" ", "  ")
        exact_truth.add((i, j))
    for n, (i, j) in enumerate(zip(sources[args.planted :], slots[args.planted :])):
        if n % 2:
            words = train[i].split()
            val[j] = ", ".join(words) + "!"  # same tokens: Jaccard 1.0, not an exact copy
        else:
            train[i] = " ".join(rng.choices(vocab, weights=weights, k=16))
            val[j] = train[i] + " " + rng.choice(vocab)  # 12 of 13 shingles shared: Jaccard 0.923
        near_truth.add((i, j))
    print(
        f"generated {args.n_train:,} train and {args.n_val:,} val texts in {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    exact_only = find_duplicates(train, val, near=False)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = find_duplicates(train, val)
    t_near = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Random Zipf texts also collide by chance (short texts of frequent words): count only planted pairs
    # for recall, and judge precision by the exact Jaccard that every reported near pair carries.
    found_exact = set(report.exact)
    found_near = {(t, v) for t, v, _ in report.near}
    exact_recall = len(exact_truth & found_exact) / len(exact_truth) if exact_truth else 1.0
    near_recall = len(near_truth & found_near) / len(near_truth) if near_truth else 1.0
    below = sum(1 for _, _, s in report.near if s < report.threshold)
    n_total = args.n_train + args.n_val
    print(
        f"exact only      : {t_exact:7.1f} s  ({n_total / t_exact:,.0f} texts/s), "
        f"{len(exact_only.exact):,} pairs"
    )
    print(
        f"exact + near    : {t_near:7.1f} s  ({n_total / t_near:,.0f} texts/s), "
        f"{len(report.exact):,} exact and {len(report.near):,} near pairs"
    )
    print(
        f"planted recall  : exact {exact_recall:.3f}, near {near_recall:.3f} "
        f"(LSH {report.num_perm} permutations, Jaccard >= {report.threshold}, {report.shingle}-word shingles)"
    )
    print(f"near pairs below the threshold: {below} (every similarity is the exact Jaccard)")
    print(f"validation fraction with a copy: {report.fraction:.2%}")
    print(f"peak memory     : {peak_mib:,.0f} MiB (Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
