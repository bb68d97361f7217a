"""``pytest --plm-list``: models, tasks and suites, with what is present locally and where the rest
would go. Looks only: builds no model, downloads nothing, hashes nothing."""

from __future__ import annotations

import importlib.util

from pytest_plmtransfer.models.registry import ModelRegistry
from pytest_plmtransfer.options import SUITES, PlmOptions
from pytest_plmtransfer.tasks.catalog import CATALOG, task_ids
from pytest_plmtransfer.tasks.resolve import DataResolver, default_cache_dir


def weights_status(name: str, registry: ModelRegistry, options: PlmOptions) -> str:
    entry = registry.entry(name)
    if not entry.needs_weights:
        return "no weights needed"
    if name == "antiberty":  # its weights come inside the antiberty wheel
        found = importlib.util.find_spec("antiberty") is not None
        return "present (in the antiberty package)" if found else "missing: pip install antiberty==0.1.3"
    from pytest_plmtransfer.models.weights import search_dirs

    dirs = search_dirs(options)
    for d in dirs:
        if (d / f"{name}.pt").is_file():
            return f"present: {d / f'{name}.pt'}"
    where = dirs[0] / f"{name}.pt"
    how = "offline: never downloaded" if not options.allow_download else "downloaded on first use"
    return f"missing ({how}) -> {where}"


def data_status(task: str, resolver: DataResolver) -> str:
    spec = CATALOG[task]
    for path in resolver.local_candidates(spec):
        if path.is_file():
            return f"present: {path}"
    return f"missing -> {resolver.cache_path(spec)} (from {resolver.url(spec)})"


def render(registry: ModelRegistry, options: PlmOptions) -> str:
    cache = options.cache_dir or default_cache_dir()
    resolver = DataResolver(options.data_dir, cache, allow_download=options.allow_download)
    lines = ["models (registry name: inits; weights):"]
    width = max(len(n) for n in registry.names())
    for name in registry.names():
        entry = registry.entry(name)
        lines.append(f"  {name:<{width}}  {','.join(entry.inits):<22} {weights_status(name, registry, options)}")
        if entry.description:
            lines.append(f"  {'':<{width}}  {entry.description}")
    lines.append("  hf:<repo-or-dir>  any Hugging Face model; name it with an alias: my_plm=hf:./path")
    lines.append("")
    lines.append("tasks (id: kind; sizes train/val/test and their source; data):")
    width = max(len(t) for t in task_ids())
    for task in task_ids():
        spec = CATALOG[task]
        sizes = f"{'/'.join(map(str, spec.sizes))} ({spec.sizes_source})" if spec.sizes else "-"
        lines.append(f"  {task:<{width}}  {spec.kind:<14} {sizes:<44} {data_status(task, resolver)}")
    lines.append("")
    lines.append("suites (--plm-suite; smoke is the default selection):")
    for name, suite in SUITES.items():
        lines.append(
            f"  {name:<6} {len(suite['models'])} models x {len(suite['tasks'])} tasks: "
            f"{', '.join(suite['models'])} | {', '.join(suite['tasks'])}"
        )
    lines.append("")
    lines.append(f"data: --plm-data-dir {options.data_dir or '(not set)'}; cache {cache}")
    return "\n".join(lines)
