"""The toy world's Figure 5: what ``brainldm demo`` reconstructs, measured against the truth.

The demo with its defaults runs once (a few minutes); each test asserts one finding of the
paper on it, with the numbers measured in docs/reconstruction.md. Its wall time is printed by
benchmarks/demo_time.py.
"""

import json
import time

import numpy as np
import pandas as pd
import pytest

from brainldm.cli import main

pytestmark = [
    pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:subj01. dropped .* voxels:UserWarning"),
]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    """The demo with its defaults, run once: its output folder and the seconds it took."""
    out = tmp_path_factory.mktemp("demo")
    start = time.time()
    assert main(["demo", "--out", str(out)]) == 0
    return out, time.time() - start


@pytest.fixture(scope="module")
def demo_run(demo_folder):
    """The demo's seconds, its means by protocol and mode, a report of them, its summary."""
    out, seconds = demo_folder
    summary = json.loads((out / "summary.json").read_text())
    table = {
        protocol: {
            mode: {m: round(s["mean"], 3) for m, s in metrics.items()}
            for mode, metrics in modes.items()
        }
        for protocol, modes in summary["scores"].items()
    }
    return seconds, table, f"{seconds:.0f} s; means: {json.dumps(table)}", summary


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["pairwise", "takagi2023"])
def test_every_demo_mode_identifies_its_images_above_chance(demo_run, protocol):
    _, table, report, _ = demo_run
    # Over 100 images identification at chance is 0.5 +- 0.03 (one standard deviation).
    # Measured (docs/reconstruction.md): the lowest is c on toy_early, 0.576 and 0.650.
    for mode in ("z", "c", "zc"):
        for metric in ("toy_early", "toy_middle", "toy_late", "toy_embedding"):
            assert table[protocol][mode][metric] > 0.5, (mode, metric, report)
    assert table[protocol]["zc"]["toy_embedding"] > 0.6, report
    assert table[protocol]["z"]["toy_early"] > 0.75, report


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["pairwise", "takagi2023"])
def test_z_beats_c_on_low_level_metrics_and_zc_beats_c_there_too(demo_run, protocol):
    _, table, report, _ = demo_run
    scores = table[protocol]
    # Measured pairwise (takagi2023): pixcorr z 0.311 (0.321), zc 0.390 (0.386), c -0.022
    # (0.045); ssim 0.495 (0.483), 0.517 (0.516), 0.368 (0.380); toy_early 0.869 (0.941),
    # 0.905 (0.958), 0.576 (0.650).
    for metric, margin in (("pixcorr", 0.1), ("ssim", 0.02), ("toy_early", 0.06)):
        assert scores["z"][metric] - scores["c"][metric] > margin, (metric, report)
        assert scores["zc"][metric] - scores["c"][metric] > margin, (metric, report)


@pytest.mark.slow
def test_c_beats_z_on_the_object_colour_and_the_pairwise_embedding(demo_run):
    _, table, report, _ = demo_run
    # Measured: toy_colour c 0.31, z 0.20 (pairwise) and 0.30, 0.20 (takagi2023);
    # toy_embedding pairwise c 0.702, z 0.660 (takagi2023 0.819, 0.811).
    for protocol in ("pairwise", "takagi2023"):
        assert table[protocol]["c"]["toy_colour"] > table[protocol]["z"]["toy_colour"], report
    assert table["pairwise"]["c"]["toy_embedding"] > table["pairwise"]["z"]["toy_embedding"], report


def _comparison(summary, protocol, metric, other):
    (test,) = [
        t
        for t in summary["comparisons"]["subj01"][protocol]
        if t["metric"] == metric and t["other"] == other
    ]
    return test


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["pairwise", "takagi2023"])
def test_zc_is_as_good_as_the_better_of_z_and_c_on_the_semantic_metrics(
    demo_folder, demo_run, protocol
):
    _, table, report, summary = demo_run
    scores = table[protocol]
    per_image = pd.read_csv(demo_folder[0] / "per_image.csv")
    # The semantic metrics are the toy network's embedding and the main object's colour
    # and shape, which ventral voxels carry; the background's colour is carried by early
    # voxels alone (docs/reconstruction.md), a low-level attribute. Measured pairwise
    # (takagi2023): toy_embedding zc 0.763 (0.883), best of z and c 0.692 (0.815);
    # toy_colour zc 0.29 (0.27) against c's 0.37 (0.32); toy_shape 0.18 (0.22) against
    # 0.14 (0.20). An attribute is right or wrong per image, so its rate over 100 images
    # moves with the draw of the noise: zc - c on the colour read +0.01 (+0.03) with the
    # noise keyed by row position and -0.08 (-0.05) keyed by betas, with a paired standard
    # error of 0.042 (0.023) both times. zc may trail the better mode by 2.5 paired
    # standard errors on an attribute, and never significantly.
    for metric, slack in (("toy_embedding", 0.0), ("toy_colour", 2.5), ("toy_shape", 2.5)):
        better = max(("z", "c"), key=lambda mode: scores[mode][metric])
        values = per_image[(per_image["protocol"] == protocol) & (per_image["metric"] == metric)]
        by_mode = {m: v.sort_values("image")["value"].to_numpy() for m, v in values.groupby("mode")}
        difference = by_mode["zc"] - by_mode[better]
        se = difference.std(ddof=1) / np.sqrt(len(difference))
        assert scores["zc"][metric] >= scores[better][metric] - slack * se, (metric, se, report)
        test = _comparison(summary, protocol, metric, better)
        assert test["mean"] >= test["other_mean"] or test["p_holm"] > 0.05, (metric, test)


@pytest.mark.slow
def test_zc_beats_z_on_the_deeper_layers_and_identifies_best_by_the_embedding(demo_run):
    _, table, report, summary = demo_run
    # Measured pairwise: toy_middle zc 0.885 against z 0.799 (Holm p 0.001), toy_late
    # 0.822 against 0.698 (p 0.003); toy_embedding zc 0.769 (standard error 0.024), z
    # 0.660, c 0.702. Every draw is seeded, so the run repeats to the last digit; 0.75 is
    # the method's target.
    for metric in ("toy_middle", "toy_late"):
        test = _comparison(summary, "pairwise", metric, "z")
        assert test["mean"] > test["other_mean"] and test["p_holm"] < 0.05, (metric, test)
    embedding = {mode: table["pairwise"][mode]["toy_embedding"] for mode in ("z", "c", "zc")}
    assert embedding["zc"] > max(embedding["z"], embedding["c"]), report
    assert embedding["zc"] >= 0.75, report


@pytest.mark.slow
def test_choosing_the_sample_closest_to_the_decoded_z_beats_a_random_sample(demo_folder):
    from scipy.stats import wilcoxon

    from brainldm import load_nsd
    from brainldm.cli import DEMO_BATCH_SIZE, DEMO_N_IMAGES, DEMO_STEPS
    from brainldm.decoding import LatentDecoder, TextDecoder
    from brainldm.metrics import IdentificationScorer
    from brainldm.reconstruction import LDMReconstructor

    out, _ = demo_folder
    data = load_nsd(out / "toy_nsd", "subj01", progress=False, cache_dir=out / "cache")
    recon = LDMReconstructor(
        "toy",
        LatentDecoder(voxels=data.roi_masks["early"]),
        TextDecoder(voxels=data.roi_masks["ventral"]),
        steps=DEMO_STEPS,
        batch_size=DEMO_BATCH_SIZE,
        memory=out / "cache" / "images",  # the demo's images, where the fit is the same
    ).fit(
        data.X_train,
        data.stimuli[data.images_train],
        [data.captions[i] for i in data.images_train],
        groups=data.images_train,
    )
    X, seen = data.X_test[:DEMO_N_IMAGES], data.stimuli[data.images_test[:DEMO_N_IMAGES]]
    scorer = IdentificationScorer(suite="toy", metrics=["pixcorr", "toy_early", "toy_embedding"])
    # Measured (docs/reconstruction.md), chosen against the mean over the 5 samples: z pixcorr
    # 0.436 against 0.321, toy_early 0.925 against 0.878, toy_embedding 0.735 against 0.680;
    # zc 0.466 against 0.387, 0.948 against 0.903, 0.755 against 0.758 (p 0.78).
    for mode in ("z", "zc"):
        every = recon.set_params(mode=mode, select=None).predict(X)
        picked = scorer.score(seen, recon.set_params(select="decoded").predict(X), True)
        chosen = {metric: np.asarray(values) for metric, values in picked.items()}
        each = [scorer.score(seen, every[:, k], True) for k in range(every.shape[1])]
        random = {metric: np.mean([s[metric] for s in each], 0) for metric in chosen}
        report = {m: (np.mean(chosen[m]), np.mean(random[m])) for m in chosen}
        assert np.mean(chosen["pixcorr"]) > np.mean(random["pixcorr"]) + 0.05, (mode, report)
        assert np.mean(chosen["toy_early"]) > np.mean(random["toy_early"]) + 0.02, (mode, report)
        assert wilcoxon(chosen["pixcorr"] - random["pixcorr"]).pvalue < 1e-4, (mode, report)
        worse = np.mean(chosen["toy_embedding"]) < np.mean(random["toy_embedding"])
        assert (
            not worse or wilcoxon(chosen["toy_embedding"] - random["toy_embedding"]).pvalue > 0.05
        )
