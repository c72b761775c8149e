"""Is the project's state whole? Cheap checks of every stored file, and their repair.

A project's state is the asset files (Parquet, one per asset partition), the LanceDB
vector store, the LLM call cache (SQLite) and Dagster's own storage (SQLite). Any of them
may be deleted, truncated or overwritten behind our back. The checks here are cheap
(existence, size, the Parquet footer, SQLite ``quick_check``, opening the LanceDB table
and scanning one column) so every ``run`` makes them first:

- a damaged asset file is removed and its asset partition wiped from Dagster's record, so
  Dagster no longer lists it as materialized and the planner re-materializes it (from the
  call cache: no LLM call is paid twice);
- a damaged call cache or Dagster storage cannot be rebuilt from anything else: the run
  stops with one line naming the file and the fix (``skill-slices doctor --repair`` sets
  it aside).

Commands that only read (``report``, ``insights``, ``explain``, ``route``) call
:func:`require_complete`: they never answer from a partial state.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from skill_assets.core.registry import Project, RegistryError

PARTITIONED = {  # asset -> partition kind, for the layout of the Parquet IO manager
    "benchmark_instances": "benchmark",
    "rationales": "benchmark",
    "skill_mentions": "benchmark",
    "model_results": "benchmark_model",
}
VECTOR_ASSET = "skill_embeddings"  # its vectors live in LanceDB
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Problem:
    """One damaged piece of state: what, where, why, and whether re-materializing heals it."""

    path: Path
    reason: str
    asset: str | None = None  # None: a store that no asset rebuilds (call cache, Dagster)
    partition: str | None = None

    @property
    def rematerializable(self) -> bool:
        return self.asset is not None

    def line(self, project: Project) -> str:
        what = f"asset {self.asset}" + (f" [{self.partition}]" if self.partition else "")
        if self.rematerializable:
            fix = f"`skill-slices run --project {project.root}` re-materializes it"
        else:
            what = "the LLM call cache" if self.path.name.startswith("llm_calls") else "Dagster"
            fix = (
                f"`skill-slices doctor --repair --project {project.root}` sets it aside "
                "(restore it from a backup instead if you have one)"
            )
        return f"{self.path}: {self.reason} ({what}); {fix}"


# ---------------------------------------------------------------------------- file checks
def check_parquet(path: Path) -> str | None:
    """Why a Parquet file cannot be read (None: it exists and its footer parses)."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size < 12:
        return f"truncated ({size} bytes)"
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(-8, 2)
        tail = fh.read(8)
    footer = int.from_bytes(tail[:4], "little")
    if head != b"PAR1" or tail[4:] != b"PAR1" or footer + 12 > size:
        return "not a Parquet file (damaged or truncated)"
    try:
        import pyarrow.parquet as pq

        pq.read_metadata(path)
    except Exception as e:  # pyarrow raises several types for a corrupt footer
        return f"unreadable Parquet footer ({type(e).__name__})"
    return None


def check_sqlite(path: Path) -> str | None:
    """Why an SQLite database is damaged (None: absent, or ``quick_check`` says ok)."""
    if not path.exists():
        return None
    with path.open("rb") as fh:
        head = fh.read(16)
    if path.stat().st_size and head != SQLITE_MAGIC:
        return "not an SQLite database (damaged)"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        return f"damaged SQLite database ({e})"
    result = "; ".join(str(r[0]) for r in rows[:3])
    return None if result == "ok" else f"SQLite quick_check failed ({result[:200]})"


def check_lancedb(folder: Path) -> str | None:
    """Why the skill-name vector table cannot be read (None: absent or readable)."""
    from skill_assets.resources.vector_store import TABLE

    if not (folder / f"{TABLE}.lance").exists():
        return None
    try:
        import lancedb

        table = lancedb.connect(str(folder)).open_table(TABLE)
        # Reading one column touches every data file: a deleted or truncated fragment fails.
        table.search().select(["name"]).limit(None).to_arrow()
    except Exception as e:  # lance reports damage through several exception types
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        return f"unreadable LanceDB table ({first})"
    return None


# ------------------------------------------------------------------------------ layout
def asset_file(project: Project, asset: str, partition: str | None) -> Path:
    """Where the Parquet IO manager keeps an asset partition (`bench|model` for results)."""
    base = project.assets_dir
    if partition is None:
        return base / f"{asset}.parquet"
    return base / asset / (partition.replace("|", "/") + ".parquet")


def registry_partitions(project: Project) -> list[tuple[str, str | None]]:
    """Every (asset, partition) with a Parquet file once the registry is fully run."""
    reg = project.registry
    out: list[tuple[str, str | None]] = []
    for b in reg.benchmarks:
        for asset in ("benchmark_instances", "rationales", "skill_mentions"):
            out.append((asset, b.name))
        for m in reg.models:
            out.append(("model_results", f"{b.name}|{m.name}"))
    return out


def store_problems(project: Project) -> list[Problem]:
    """Damage in the stores no asset rebuilds: the call cache and Dagster's databases."""
    out = []
    home = project.dagster_home
    for path in [
        project.call_cache_path,
        home / "history" / "runs.db",
        home / "history" / "runs" / "index.db",
        home / "schedules" / "schedules.db",
    ]:
        reason = check_sqlite(path)
        if reason:
            out.append(Problem(path, reason))
    return out


def _in_dagster(project: Project, problem: Problem) -> bool:
    return project.dagster_home in problem.path.parents


def _materialized(instance, project: Project) -> list[tuple[str, str | None]]:
    """(asset, partition) pairs Dagster records as materialized and the registry still has."""
    from dagster import AssetKey

    wanted = set(registry_partitions(project))
    out: list[tuple[str, str | None]] = []
    for key in instance.get_asset_keys():
        name = key.to_user_string()
        if name in PARTITIONED:
            for part in sorted(instance.get_materialized_partitions(AssetKey(name))):
                if (name, str(part)) in wanted:
                    out.append((name, str(part)))
        elif instance.get_latest_materialization_event(key) is not None:
            out.append((name, None))
    return out


def asset_problems(project: Project, pairs, vectors: bool = True) -> list[Problem]:
    """Damage in the files of the given (asset, partition) pairs and (with `vectors`) in
    the vector store."""
    out = []
    for asset, part in pairs:
        path = asset_file(project, asset, part)
        reason = check_parquet(path)
        if reason:
            out.append(Problem(path, reason, asset, part))
        if asset == VECTOR_ASSET and vectors:
            reason = check_lancedb(project.lancedb_dir)
            if reason:
                out.append(Problem(project.lancedb_dir, reason, asset, None))
    return out


def check(project: Project, instance=None, partitioned=None, vectors: bool = True) -> list[Problem]:
    """Every problem found: stores first; then, with a Dagster instance, every file of
    every materialized asset partition (without one: the files the registry implies for
    the `partitioned` assets named, default all, and every aggregate that has a file).
    `vectors=False` skips opening the LanceDB table, for commands that never read it."""
    problems = store_problems(project)
    if any(_in_dagster(project, p) for p in problems):
        return problems  # Dagster's record cannot be read: nothing to compare files with
    if instance is not None:
        pairs = _materialized(instance, project)
    else:
        pairs = registry_partitions(project) if project.assets_dir.exists() else []
        if partitioned is not None:
            pairs = [(a, p) for a, p in pairs if a in partitioned]
        # and every aggregate asset that has a file (a missing one was never materialized)
        pairs += [(f.stem, None) for f in sorted(project.assets_dir.glob("*.parquet"))]
    return problems + asset_problems(project, pairs, vectors)


# ------------------------------------------------------------------------------ repair
def _wipe(instance, problem: Problem) -> None:
    """Forget the damaged partition in Dagster, so it is listed as not materialized."""
    from dagster import AssetKey

    if problem.asset is None:  # a store no asset rebuilds: nothing to forget in Dagster
        return
    key = AssetKey(problem.asset)
    if problem.partition is not None:
        try:
            instance.wipe_asset_partitions(key, [problem.partition])
            return
        except NotImplementedError:
            # SQLite event storage cannot wipe one partition: wipe the asset, and every
            # partition of it is re-materialized (imports and cached LLM calls: cheap).
            pass
    instance.wipe_assets([key])


def _set_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(dest)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(dest.with_name(dest.name + suffix))
    return dest


def repair(project: Project, problems: list[Problem], instance) -> list[str]:
    """Remove damaged asset files and wipe their partitions in Dagster (re-materialized by
    the next run). Returns one line per action."""
    done = []
    for p in problems:
        if not p.rematerializable:
            continue
        if p.path == project.lancedb_dir:  # only our table: other caches may live there
            from skill_assets.resources.vector_store import TABLE

            shutil.rmtree(p.path / f"{TABLE}.lance", ignore_errors=True)
        elif p.path.exists():
            p.path.unlink()
        _wipe(instance, p)
        part = f" [{p.partition}]" if p.partition else ""
        done.append(f"{p.asset}{part}: {p.reason} -> removed, will be re-materialized")
    return done


def checked_instance(project: Project, log=print):
    """The project's Dagster instance, after verifying and healing the state (for `run`).

    Stops with one line naming the file and the fix when a store no asset rebuilds is
    damaged; otherwise damaged asset files are removed and their partitions wiped, so this
    run re-materializes them.
    """
    from dagster import DagsterInstance

    stores = store_problems(project)
    if stores:
        raise RegistryError("; ".join(p.line(project) for p in stores))
    instance = DagsterInstance.get()
    for line in repair(project, check(project, instance), instance):
        log(f"state damaged: {line}")
    return instance


def require_complete(
    project: Project, partitioned=("benchmark_instances", "model_results"), vectors: bool = True
) -> None:
    """Raise one line when an asset file the command reads is missing or unreadable (the
    registry's partitions of the `partitioned` assets, and every aggregate file), so a
    reading command never answers from partial state (e.g. 2 of 3 models)."""
    if not project.assets_dir.exists():
        return
    found = check(project, partitioned=partitioned, vectors=vectors)
    problems = [p for p in found if p.rematerializable]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RegistryError(problems[0].line(project) + more)


def doctor(project: Project, repair_state: bool = False) -> dict:
    """Report every problem (and with `repair_state` repair what can be): for `doctor`."""
    from skill_assets.app.runner import prepare_dagster_home

    stores = store_problems(project)
    report = {"problems": [p.line(project) for p in stores], "repaired": []}
    if stores and not repair_state:
        return report
    for p in stores:  # set aside: history is lost, the next run re-materializes from files
        target = project.dagster_home if _in_dagster(project, p) else p.path
        if target.exists():
            dest = _set_aside(target)
            report["repaired"].append(f"{target}: {p.reason} -> moved to {dest.name}")
    if not project.dagster_home.exists() and not project.assets_dir.exists():
        return report
    from dagster import DagsterInstance

    prepare_dagster_home(project)
    instance = DagsterInstance.get()
    try:
        problems = check(project, instance)
        report["problems"] += [p.line(project) for p in problems]
        if repair_state:
            report["repaired"] += repair(project, problems, instance)
    finally:
        instance.dispose()
    return report


def model_coverage(project: Project) -> dict[str, int]:
    """Rows of results per registry model across benchmarks (from the Parquet footers)."""
    import pyarrow.parquet as pq

    out = {}
    for m in project.registry.models:
        n = 0
        for b in project.registry.benchmarks:
            path = asset_file(project, "model_results", f"{b.name}|{m.name}")
            if check_parquet(path) is None:
                n += pq.read_metadata(path).num_rows
        out[m.name] = n
    return out


def lost_models(project: Project, coverage: dict[str, int]) -> list[str]:
    """One line per registry model that ended the run without a single result."""
    out = []
    for m in project.registry.models:
        if coverage.get(m.name, 0) == 0:
            source = f"results {m.results!r}" if m.results else f"live {m.provider}:{m.model}"
            out.append(
                f"model {m.name!r}: no results on any benchmark ({source}), so it is missing"
                " from slices, insights and routing; check that its results name the"
                " benchmarks' instance ids (and this model), or remove it from the registry"
            )
    return out
