"""A steady-operator experiment: learn the map between two static fields, such as Darcy flow's
coefficient a(x) -> pressure u(x), and test it at the training resolution and zero-shot at others.

The protocol is neuraloperator's small-Darcy example (neuraloperator 2.0.0,
`examples/models/plot_FNO_darcy.py` with `neuralop.data.datasets.darcy.DarcyDataset`): train on
the 16^2 file's (coefficient, solution) pairs, test on the 50-sample files at 16^2 and 32^2, and
report the mean relative L2 error per sample in physical units. A pair is one input frame and
one output frame (T_in = T_out = 1) of the field's models, trained by the shared Trainer with the
PDE task's loss.

The training file holds both fields as (sample, y, x) (or (sample, x)). It is split like
trajectories (`data.n_train`, `n_val`, `n_test`, a seeded shuffle; the Darcy presets train on the
whole file), and `data.test_datasets` name further test files, scored one by one
(`test/<file stem>/rel_l2`, the file's own split as `test/rel_l2`). The surrogate file records
both fields' statistics, so `Surrogate.apply` maps physical inputs to physical outputs.

Deviations from the example:
- Each field is normalized by its own training-split mean and std; the example encodes only the
  output (its `encode_input=False`) and appends grid channels (the models here add their own
  coordinates).
- The training loss is the preset's (relative L2 in the Darcy presets; the example trains on H1).
- A subset of the training file (`data.n_train` below its size) is a seeded random one; the
  example takes the first n_train samples. On the whole file both are the file in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor
from torch.utils.data import Dataset

from pde import metrics
from pde.data import SPATIAL, DatasetError, FieldStats, open_dataset, resolve_path, split_by_trajectory
from pde.experiment import (
    PDEDataConfig,
    PDEExperimentConfig,
    PDEExperimentResult,
    fit_model,
    log_setup,
    make_surrogate,
    record_result,
    resolve_dataset,
    start_run,
)
from pde.surrogate import Surrogate
from seqlab.experiment import closing_run
from seqlab.tracking import NullTracker, Tracker
from seqlab.train.runtime import autocast

TEST_BATCH = 256
"""Test samples per forward pass, so a large test file is not one batch."""
SPLIT = "test"
"""Metric prefix of the training file's own test split; test files get `test/<file stem>`."""


class FieldPairs(Dataset):
    """(input, output) pairs of static fields as one-frame windows x (1, 1, *S), y (1, 1, *S), each
    normalized with its own training statistics. Read per item, so lazily opened data stay lazy."""

    def __init__(self, ds: xr.Dataset, input_stats: FieldStats, output_stats: FieldStats) -> None:
        self.source = str(ds.attrs.get("source", "dataset"))
        self.samples = np.asarray(ds["sample"])
        self.stats = (input_stats, output_stats)
        self._fields = [ds[stats.variables[0]].variable for stats in self.stats]  # (N, *S) each

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        pair = []
        for values, stats in zip(self._fields, self.stats):
            field = np.asarray(values[index].values, dtype=np.float32)  # (*S)
            if not np.isfinite(field).all():
                raise DatasetError(f"{self.source}: variable {stats.variables[0]!r} holds NaN or inf at sample "
                                   f"{self.samples[index]}")
            pair.append(stats.normalize(torch.from_numpy(field)[None, None], channel_dim=1))  # (1, 1, *S)
        return pair[0], pair[1]


@dataclass
class OperatorData:
    path: Path
    attrs: dict[str, Any]
    input_stats: FieldStats
    output_stats: FieldStats
    train: FieldPairs
    val: FieldPairs | None
    tests: dict[str, xr.Dataset]
    """Metric prefix -> a test set holding the input and output fields."""
    spatial_dims: int


def open_pairs(path: Path, data: PDEDataConfig) -> xr.Dataset:
    """The file's `data.input` and `data.output` fields, checked to be static fields on one grid."""
    ds = open_dataset(path, chunks=None)
    dims = {name: ds[name].dims for name in (data.input, data.output) if name in ds.data_vars}
    if len(dims) < 2 or any(d[:1] != ("sample",) or d[1:] not in SPATIAL.values() for d in dims.values()):
        found = ", ".join(f"{name} {ds[name].dims}" for name in ds.data_vars)
        raise DatasetError(f"{path}: a steady operator maps data.input={data.input!r} to data.output={data.output!r}, "
                           f"static fields with dims (sample, y, x) or (sample, x); the file has {found}. "
                           "Trajectories (sample, time, ...) are learned by presets without data.input/data.output")
    if ds[data.input].shape != ds[data.output].shape:
        raise DatasetError(f"{path}: data.input {data.input!r} {ds[data.input].shape} and data.output "
                           f"{data.output!r} {ds[data.output].shape} must lie on one grid")
    return ds[[data.input, data.output]]


def load_operator_data(cfg: PDEExperimentConfig) -> OperatorData:
    """The training file split, its statistics, and every test set, all checked before training."""
    d = cfg.data
    path = resolve_dataset(cfg)
    ds = open_pairs(path, d)
    if ds.nbytes < 4 * 2**30:  # random pair access from memory, not from disk
        ds = ds.load()
    splits = split_by_trajectory(ds, d.n_train, d.n_val, d.n_test, seed=d.split_seed)
    tests = {SPLIT: splits.test} if splits.test.sizes["sample"] else {}
    for name in d.test_datasets:
        test = open_pairs(resolve_path(name, d.data_dir), d)
        if test[d.input].dims != ds[d.input].dims:
            raise DatasetError(f"test dataset {name}: fields have dims {test[d.input].dims}, the training data "
                               f"{ds[d.input].dims}")
        tests[f"{SPLIT}/{Path(name).stem}"] = test
    if splits.train.sizes["sample"] == 0 or not tests:
        raise DatasetError(f"{path}: no training sample or no test data (split {splits.train.sizes['sample']}/"
                           f"{splits.val.sizes['sample']}/{splits.test.sizes['sample']}, data.test_datasets="
                           f"{d.test_datasets})")
    input_stats, output_stats = FieldStats.fit(splits.train, [d.input]), FieldStats.fit(splits.train, [d.output])
    val = FieldPairs(splits.val, input_stats, output_stats) if splits.val.sizes["sample"] else None
    return OperatorData(path, dict(ds.attrs), input_stats, output_stats,
                        FieldPairs(splits.train, input_stats, output_stats), val, tests, ds[d.input].ndim - 1)


def operator_test(surrogate: Surrogate, model: torch.nn.Module, tests: dict[str, xr.Dataset],
                  device: torch.device, precision: str) -> tuple[dict[str, float], dict[str, tuple[Tensor, Tensor]]]:
    """Mean relative L2 per sample in physical units on each test set, as {"<prefix>/rel_l2": value},
    and each set's first batch (prediction, truth) as (B, 1, C, *S) for figures."""
    model.eval()
    scores, examples = {}, {}
    (input_name,), (output_name,) = surrogate.inputs, surrogate.variables
    for prefix, ds in tests.items():
        errors = []
        for lo in range(0, ds.sizes["sample"], TEST_BATCH):
            part = ds.isel(sample=slice(lo, lo + TEST_BATCH))
            inputs = torch.from_numpy(np.asarray(part[input_name].values, dtype=np.float32))[:, None]  # (B, 1, *S)
            truth = torch.from_numpy(np.asarray(part[output_name].values, dtype=np.float32))[:, None, None]
            with torch.inference_mode(), autocast(device, precision):
                pred = surrogate.apply(model, inputs.to(device)).float().cpu()[:, None]  # (B, 1, 1, *S)
            errors.append(metrics.relative_l2(pred, truth))
            examples.setdefault(prefix, (pred, truth))
        scores[f"{prefix}/rel_l2"] = float(torch.cat(errors).mean())
    return scores, examples


def run_operator(cfg: PDEExperimentConfig, resume: bool = False, tracker: Tracker | None = None) -> PDEExperimentResult:
    """Train the operator, keep the best (or EMA) weights, test it on every test set, save the surrogate, log it."""
    data = load_operator_data(cfg)
    cfg, model, tracker = start_run(cfg, 1, data.spatial_dims, tracker, resume)  # one field in, one out
    with closing_run(tracker):
        sizes = ", ".join(f"{prefix} {ds.sizes['sample']}" for prefix, ds in data.tests.items())
        split = f"{len(data.train)}/{len(data.val) if data.val else 0} pairs; {sizes}"
        log_setup(tracker, cfg, data.path, data.attrs, split, model)
        trainer, fit = fit_model(cfg, model, tracker, data.output_stats, data.train, data.val, resume)
        surrogate = make_surrogate(cfg, trainer.model, data.attrs, data.output_stats, data.input_stats)
        test, examples = operator_test(surrogate, trainer.model, data.tests, trainer.device, trainer.precision)
        surrogate_path = record_result(tracker, cfg, fit, test, surrogate)
        if cfg.tracking.plots and not isinstance(tracker, NullTracker):
            from pde import plots

            for prefix, (pred, truth) in examples.items():
                figure = plots.field_snapshots(pred, truth, [1], title=f"{cfg.data.output} ({prefix})")
                tracker.log_figure(figure, f"plots/{prefix.replace('/', '_')}_fields.png")
    return PDEExperimentResult(tracker.run_id, cfg.run_dir, test, fit, cfg, surrogate_path)
