"""Track-level evaluation: metrics, plots and a self-contained HTML report.

A track's prediction is the mean of its patch probabilities (seed 001's whole-song slicing), so
every figure here is per track, never per patch.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..patches import PatchReader, evaluation_patches, model_inputs

PROBABILITIES = "probabilities"


def track_outputs(
    model: Any, reader: PatchReader, tracks: pd.DataFrame, outputs: Sequence[str], *, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Per-track means of the model's patch ``outputs`` (``"probabilities"`` or a layer name such as
    ``"embedding"``), from one read of the patches and one forward pass.

    Returns
    -------
    dict
        Output name → float32 [shape=(n_tracks, width)].
    """
    import keras

    heads = [model.output if name == PROBABILITIES else model.get_layer(name).output for name in outputs]
    patches, owners = evaluation_patches(reader, tracks)
    per_patch = keras.Model(model.inputs, heads).predict(model_inputs(patches), batch_size=batch_size, verbose=0)
    if len(outputs) == 1:
        per_patch = [per_patch]
    counts = np.bincount(owners, minlength=len(tracks))[:, None]
    means = {}
    for name, values in zip(outputs, per_patch, strict=True):
        sums = np.zeros((len(tracks), values.shape[1]), dtype=np.float64)
        np.add.at(sums, owners, values)
        means[name] = (sums / counts).astype(np.float32)
    return means


def predict_tracks(model: Any, reader: PatchReader, tracks: pd.DataFrame, *, batch_size: int = 64) -> np.ndarray:
    """Mean patch probabilities per track, float32 [shape=(n_tracks, n_classes)]."""
    return track_outputs(model, reader, tracks, [PROBABILITIES], batch_size=batch_size)[PROBABILITIES]


def metrics(y_true: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, top-3 accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1)
    top3 = np.argsort(-probabilities, axis=1)[:, :3]
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, predicted, labels=labels, zero_division=0)
    return {
        "n_tracks": len(y_true),
        "accuracy": float((predicted == y_true).mean()),
        "top3_accuracy": float((top3 == y_true[:, None]).any(axis=1).mean()),
        "macro_f1": float(f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=labels).tolist(),
    }


def write_report(
    folder: Path,
    *,
    title: str,
    card: dict[str, Any],
    classes: tuple[str, ...],
    tracks: pd.DataFrame,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    history: dict[str, list[float]],
    embeddings: np.ndarray,
) -> dict[str, Path]:
    """Confusion matrix, training curves (a linear probe: its C selection; ``auto``: every candidate's
    figures too) and embedding map PNGs, misclassified CSV, ``index.html``."""
    folder.mkdir(parents=True, exist_ok=True)
    results = card["metrics"]
    fit = card.get("fit", {})
    files = {"confusion_matrix": _confusion_png(folder / "confusion_matrix.png", results["confusion_matrix"], classes)}
    if "selection" in fit:  # a linear probe: no epochs, its figures are the inner cross-validation's
        files["probe_selection"] = _selection_png(folder / "probe_selection.png", fit)
    else:
        files["training_curves"] = _curves_png(folder / "training_curves.png", history)
    if len(fit.get("candidates", ())) > 1:
        files["backbones"] = _candidates_png(folder / "backbones.png", fit["candidates"], fit["backbone"])
    files["embedding_map"] = _embedding_png(folder / "embedding_map.png", embeddings, y_true, classes)
    predicted = probabilities.argmax(axis=1)
    wrong = predicted != y_true
    misclassified = pd.DataFrame(
        {
            "track_id": tracks["track_id"].to_numpy()[wrong],
            "uri": tracks["uri"].to_numpy()[wrong],
            "true": [classes[i] for i in y_true[wrong]],
            "predicted": [classes[i] for i in predicted[wrong]],
            "probability": probabilities[wrong, predicted[wrong]],
        }
    )
    files["misclassified"] = folder / "misclassified.csv"
    misclassified.to_csv(files["misclassified"], index=False)
    files["index"] = folder / "index.html"
    files["index"].write_text(_html(title, card, classes, files, misclassified), encoding="utf-8")
    return files


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _confusion_png(path: Path, matrix: list[list[int]], classes: tuple[str, ...]) -> Path:
    plt = _figure()
    counts = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > counts.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _curves_png(path: Path, history: dict[str, list[float]]) -> Path:
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, values in history.items():
        axis = axes[0] if key.endswith("loss") else axes[1]
        axis.plot(range(1, len(values) + 1), values, label=key)
    for axis, name in zip(axes, ("loss", "accuracy"), strict=True):
        axis.set_xlabel("epoch")
        axis.set_title(name)
        if axis.lines:
            axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _selection_png(path: Path, fit: dict[str, Any]) -> Path:
    """A probe's inner cross-validation: log loss and accuracy (mean ± std of folds) against C, the chosen C marked."""
    plt = _figure()
    scores = fit["selection"]
    c = [s["C"] for s in scores]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, ("log_loss", "accuracy"), strict=True):
        axis.errorbar(c, [s[f"{key}_mean"] for s in scores], yerr=[s[f"{key}_std"] for s in scores], marker="o",
                      capsize=3)  # fmt: skip
        axis.axvline(fit["C"], color="tab:red", linestyle="--", label=f"chosen C = {fit['C']:g}")
        axis.set_xscale("log")
        axis.set_xlabel("C (inverse regularisation)")
        axis.set_title(f"{key.replace('_', ' ')}, {fit['inner_cv']['folds']} inner folds")
        axis.legend(fontsize=8)
    fig.suptitle(f"{fit['backbone']}: C chosen by {fit['inner_cv']['fold_source']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _candidates_png(path: Path, candidates: Sequence[dict[str, Any]], kept: str) -> Path:
    """Each candidate probe's inner cross-validated log loss at its best C (mean ± std), the kept one highlighted."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(candidates)))
    names = [c["architecture"] for c in candidates]
    colours = ["tab:red" if name == kept else "tab:blue" for name in names]
    ax.barh(names, [c["log_loss_mean"] for c in candidates], xerr=[c["log_loss_std"] for c in candidates],
            color=colours, capsize=3)  # fmt: skip
    ax.invert_yaxis()
    ax.set_xlabel("inner cross-validated log loss at each candidate's chosen C (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _embedding_png(path: Path, embeddings: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...]) -> Path:
    """A 2-D t-SNE map of track embeddings coloured by true label."""
    from sklearn.manifold import TSNE

    plt = _figure()
    if len(embeddings) < 4:  # t-SNE needs its perplexity below the number of points: a tiny test split
        points = np.pad(embeddings[:, :2], ((0, 0), (0, max(0, 2 - embeddings.shape[1]))))
    else:
        perplexity = float(max(1, min(30, (len(embeddings) - 1) // 3)))
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(embeddings)
    fig, ax = plt.subplots(figsize=(6, 5))
    for index, name in enumerate(classes):
        chosen = y_true == index
        ax.scatter(points[chosen, 0], points[chosen, 1], s=14, label=name)
    ax.set_title("test tracks, t-SNE of embeddings")
    ax.legend(fontsize=8, markerscale=1.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _html(
    title: str, card: dict[str, Any], classes: tuple[str, ...], files: dict[str, Path], wrong: pd.DataFrame
) -> str:
    results = card["metrics"]

    def image(key: str) -> str:
        data = base64.b64encode(files[key].read_bytes()).decode()
        return f'<img alt="{key}" src="data:image/png;base64,{data}">'

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{results['per_class'][name][k]:.3f}</td>" for k in ("precision", "recall", "f1"))
        + f"<td>{results['per_class'][name]['support']}</td></tr>"
        for name in classes
    )
    summary = (
        f"accuracy {results['accuracy']:.3f} · top-3 {results['top3_accuracy']:.3f} · "
        f"macro-F1 {results['macro_f1']:.3f} on {results['n_tracks']} test tracks"
    )
    fitting = _probe_html(card.get("fit", {}), image) if "probe_selection" in files else (
        f"<h2>Training curves</h2>{image('training_curves')}")  # fmt: skip
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 10px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{summary}</p>
<p>split: {html.escape(str(card["data"]["split_source"]))}, tracks {html.escape(str(card["data"]["counts"]))}</p>
<h2>Per class</h2><table>
<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>
<h2>Confusion matrix</h2>{image("confusion_matrix")}
{fitting}
<h2>Embedding map</h2>{image("embedding_map")}
<h2>Misclassified tracks ({len(wrong)})</h2>{wrong.to_html(index=False, float_format="%.3f")}
</body></html>"""


def _probe_html(fit: dict[str, Any], image: Any) -> str:
    """A probe's choice: the candidates table and chart (``auto``), the C selection plot and its figures."""

    def row(cells: Sequence[Any]) -> str:
        return "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>"

    def figures(s: dict[str, Any]) -> list[str]:
        return [
            f"{s['log_loss_mean']:.4f} ± {s['log_loss_std']:.4f}",
            f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}",
        ]

    inner = fit["inner_cv"]
    parts = [f"<h2>Linear probe</h2><p>{html.escape(fit['backbone'])}, C = {fit['C']:g}, refitted on "
             f"{fit['refitted_on']['n_tracks']} train + valid tracks; C chosen by the lowest mean log loss of "
             f"{html.escape(inner['fold_source'])} cross-validation inside them.</p>"]  # fmt: skip
    if len(fit["candidates"]) > 1:
        rows = "".join(row([c["architecture"], c["n_features"], f"{c['C']:g}", *figures(c)]) for c in fit["candidates"])
        parts.append(f"<h2>Backbones compared (--backbone auto)</h2><p>{html.escape(fit['why'])}</p><table>"
                     "<tr><th>candidate</th><th>features</th><th>C</th><th>log loss</th><th>accuracy</th></tr>"
                     f"{rows}</table>{image('backbones')}")  # fmt: skip
    rows = "".join(row([f"{s['C']:g}" + (" (chosen)" if s["C"] == fit["C"] else ""), *figures(s)])
                   for s in fit["selection"])  # fmt: skip
    parts.append(f"<h2>C selection</h2><table><tr><th>C</th><th>log loss</th><th>accuracy</th></tr>{rows}</table>"
                 f"{image('probe_selection')}")  # fmt: skip
    return "\n".join(parts)
