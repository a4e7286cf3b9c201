"""Renders docs/benchmarks.md from the outputs of one run of benches/report.sh.

    python3 benches/report.py target/report > docs/benchmarks.md

Every number on the page comes from the files in that one folder; nothing
is typed in by hand. Standard library only.
"""
import csv
import json
import pathlib
import re
import sys


def read(folder, name):
    path = folder / name
    return path.read_text() if path.exists() else None


def machine(folder):
    facts = {}
    for line in (read(folder, "machine.txt") or "").splitlines():
        key, _, value = line.partition(":")
        facts[key.strip()] = value.strip()
    return facts


def criterion(home):
    """{(group, bench): estimates} for one CRITERION_HOME."""
    results = {}
    for path in sorted(pathlib.Path(home).glob("**/new/estimates.json")):
        meta = json.loads((path.parent / "benchmark.json").read_text())
        estimates = json.loads(path.read_text())
        median = estimates["median"]
        results[(meta["group_id"], meta["function_id"])] = {
            "median": median["point_estimate"],
            "low": median["confidence_interval"]["lower_bound"],
            "high": median["confidence_interval"]["upper_bound"],
            "throughput": meta.get("throughput"),
        }
    return results


def duration(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def rate(throughput, ns):
    if not throughput:
        return ""
    if "Bytes" in throughput:
        return f"{throughput['Bytes'] / ns * 1e9 / 2**30:.2f} GiB/s"
    if "Elements" in throughput:
        per_second = throughput["Elements"] / ns * 1e9
        return f"{per_second / 1e9:.3g} G/s" if per_second >= 1e9 else f"{per_second / 1e6:.3g} M/s"
    return ""


def group_table(results, group, note=""):
    rows = [(bench, r) for (g, bench), r in results.items() if g == group]
    if not rows:
        return f"(no results for `{group}` in this run)\n"
    lines = [
        f"`{group}`{note}:",
        "",
        "| benchmark | median | 95% interval of the median | rate |",
        "|---|---|---|---|",
    ]
    for bench, r in rows:
        lines.append(
            f"| {bench} | {duration(r['median'])} | {duration(r['low'])} to {duration(r['high'])} "
            f"| {rate(r['throughput'], r['median'])} |"
        )
    return "\n".join(lines) + "\n"


def text_block(folder, name, drop=()):
    """A file of report.sh's `record` (its command line, then its output)
    as a text block, without the lines that start with any of `drop`."""
    text = read(folder, name)
    if text is None:
        return f"(`{name}` was not produced in this run)\n"
    lines = [line for line in text.rstrip().splitlines() if not line.startswith(drop)]
    return "```text\n" + "\n".join(lines) + "\n```\n"


def spread(values):
    return max(values) / min(values)


def square_section(folder):
    runs = sorted(folder.glob("criterion-square-*"))
    out = ["## Per-item overhead of `map`: thread backend against plain rayon", ""]
    out.append(
        "`cargo bench --bench square`, run "
        f"{len(runs)} times: squares of 10^7 `u64`, owned `Vec` in, `Vec` out, 2 threads. "
        "Goal (issue 16): parpool's thread backend within 1.15x of rayon."
    )
    out += ["", "| run | rayon `into_par_iter().map().collect()` | parpool threads | ratio |", "|---|---|---|---|"]
    ratios = []
    first = None
    for index, run in enumerate(runs, 1):
        results = criterion(run)
        first = first or results
        group = next((g for g, _ in results if g.startswith("square_1e7")), None)
        if group is None:
            continue
        rayon = results[(group, "rayon_par_iter")]["median"]
        threads = results[(group, "parpool_threads")]["median"]
        ratios.append(threads / rayon)
        out.append(f"| {index} | {duration(rayon)} | {duration(threads)} | {threads / rayon:.2f}x |")
    if ratios:
        out += ["", f"Best ratio {min(ratios):.2f}x, worst {max(ratios):.2f}x over the {len(ratios)} runs.", ""]
    if first:
        group = next(g for g, _ in first if g.startswith("square_1e7"))
        out += ["Every row of the first run:", "", group_table(first, group)]
    return "\n".join(out)


def small_call_section(folder):
    runs = sorted(folder.glob("criterion-square-*"))
    out = [
        "## A whole small call: `Pool::new().map(square, 6 items)` against rayon's global pool",
        "",
        "`cargo bench --bench square` (group `small_call_6_items`), the same "
        f"{len(runs)} runs: the design card's call made afresh each time, as in a function "
        "that runs often, beside rayon's `into_par_iter().map().collect()` on its global pool "
        "and a parpool pool made once. Goal (issue 21): within 1.5x of rayon's global pool.",
        "",
        "| run | rayon global pool | `Pool::new()` each call | pool reused | ratio (new each call / rayon) |",
        "|---|---|---|---|---|",
    ]
    ratios = []
    for index, run in enumerate(runs, 1):
        results = criterion(run)
        try:
            rayon = results[("small_call_6_items", "rayon_global_pool")]["median"]
            fresh = results[("small_call_6_items", "parpool_new_each_call")]["median"]
            reused = results[("small_call_6_items", "parpool_pool_reused")]["median"]
        except KeyError:
            continue
        ratios.append(fresh / rayon)
        out.append(
            f"| {index} | {duration(rayon)} | {duration(fresh)} | {duration(reused)} | {fresh / rayon:.2f}x |"
        )
    if ratios:
        out += ["", f"Best ratio {min(ratios):.2f}x, worst {max(ratios):.2f}x over the {len(ratios)} runs.", ""]
    else:
        out += ["", "(no `small_call_6_items` results in this run)", ""]
    return "\n".join(out)


def async_section(folder):
    runs = sorted(folder.glob("criterion-async-*"))
    goals = {"threads": 1.2, "processes": 1.1}
    out = [
        "## Awaiting a call",
        "",
        "`cargo bench --features async --bench async`, run "
        f"{len(runs)} times: `map_async` awaited on a tokio current-thread runtime against the "
        "blocking `map`, 1000 items squared, 2 workers. On threads the pool's own last chunk "
        "completes the future (no helper thread); on processes a reused helper thread drives "
        "the call. Goals (issue 28): at most 1.2x `map` on threads, 1.1x on processes.",
        "",
        "| run | backend | `map` | `map_async` | ratio |",
        "|---|---|---|---|---|",
    ]
    ratios = {}
    for index, run in enumerate(runs, 1):
        results = criterion(run)
        for backend in goals:
            try:
                blocking = results[("call_1000_items_2_workers", f"{backend}/map")]["median"]
                awaited = results[("call_1000_items_2_workers", f"{backend}/map_async")]["median"]
            except KeyError:
                continue
            ratios.setdefault(backend, []).append(awaited / blocking)
            out.append(
                f"| {index} | {backend} | {duration(blocking)} | {duration(awaited)} | {awaited / blocking:.2f}x |"
            )
    if not ratios:
        out += ["", "(no `call_1000_items_2_workers` results in this run)", ""]
    out.append("")
    for backend, values in ratios.items():
        out.append(
            f"- {backend}: best ratio {min(values):.2f}x, worst {max(values):.2f}x over "
            f"{len(values)} runs (goal {goals[backend]}x); the runs' ratios differ by "
            f"{spread(values):.2f}x."
        )
    return "\n".join(out) + "\n"


def processes_section(folder):
    results = criterion(folder / "criterion-processes")
    out = [
        "## Process backend: cost of a call and of an item",
        "",
        "`cargo bench --bench processes` (2 workers), and Python's `multiprocessing.Pool(2)` "
        "on the same calls (`python3 benches/compare/multiprocessing_pool.py`, fork start "
        "method, best of 5).",
        "",
        group_table(results, "map_call_1000_items_2_workers", " (a whole call: start workers, map 1000 trivial items, collect, reap; a session forks once, before timing)"),
        group_table(results, "per_item_1e6_items_2_workers", " (10^6 trivial items; rate = items per second)"),
        fork_cost_table(results),
        "Python, same machine, same run (`multiprocessing_pool.py`):",
        "",
        text_block(folder, "multiprocessing_pool.txt"),
    ]
    call = results.get(("map_call_1000_items_2_workers", "processes"))
    item = results.get(("per_item_1e6_items_2_workers", "processes"))
    python = read(folder, "multiprocessing_pool.txt") or ""
    py_call = re.search(r"close: ([\d.]+) ms", python)
    py_item = re.search(r"([\d.]+) ns per item", python)
    if call and item and py_call and py_item:
        out.append(
            f"parpool's whole call is {float(py_call.group(1)) * 1e6 / call['median']:.1f}x faster than "
            f"Python's, and its per-item cost {float(py_item.group(1)) / (item['median'] / 1e6):.1f}x lower.\n"
        )
    return "\n".join(out)


def fork_cost_table(results):
    """The 1000-item call from a large parent: one row per parent size,
    plain / huge pages / session side by side, then the parent holding
    1 GiB of results."""
    group = "map_call_1000_items_big_parent"
    sizes = sorted(
        {int(m.group(1)) for (g, bench) in results if g == group
         for m in [re.search(r"_parent_(\d+)_GiB$", bench)] if m}
    )
    if not sizes:
        return f"(no results for `{group}` in this run)\n"
    def cell(bench):
        r = results.get((group, bench))
        return duration(r["median"]) if r else "not run"
    lines = [
        f"`{group}` (the same 1000-item call from a parent holding that much touched heap, "
        "median: `fork` copies the parent's page tables, one entry per 4 KiB page but one per "
        "2 MiB huge page; a session forked its workers once, before timing; see "
        "[Large parents](performance-notes.md#large-parents-fork-cost-and-huge-pages)):",
        "",
        "| parent holds | `map`, 4 KiB pages | `map`, huge pages (`MADV_HUGEPAGE`) | session |",
        "|---|---|---|---|",
    ]
    for gib in sizes:
        lines.append(
            f"| {gib} GiB | {cell(f'processes_parent_{gib}_GiB')} "
            f"| {cell(f'processes_huge_pages_parent_{gib}_GiB')} "
            f"| {cell(f'processes_session_parent_{gib}_GiB')} |"
        )
    lines += [
        "",
        "| parent holds | `map` |",
        "|---|---|",
    ]
    for name, label in (("processes", "worker processes (read onto huge pages)"), ("threads", "threads")):
        lines.append(f"| 1 GiB of results returned by {label} | {cell(f'processes_holding_1_GiB_of_{name}_results')} |")
    return "\n".join(lines) + "\n"


def large_results_section(folder):
    results = criterion(folder / "criterion-processes")
    group = "large_results_4_x_64_MiB_2_workers"
    out = [
        "## Large results from worker processes and MPI ranks",
        "",
        "Goal (issue 16): at least 1 GB/s for `Vec<u8>` and `Vec<f64>` results on processes "
        "and on MPI. `map` over 4 items, 2 workers, `chunk_size(1)`, each result one array.",
        "",
        group_table(results, group, " (`cargo bench --bench processes`; 64 MiB per result; rate = bytes of results per second)"),
    ]
    out += [
        "Processes against threads in one run, the command line giving MiB per result, best of 3 "
        "(`cargo run --release --example results_rate`; goal (issue 30): processes at "
        "50% of threads or more):",
        "",
        text_block(folder, "results-rate.txt"),
        "A loop of calls over a large dataset, plain, on huge pages and as a session "
        "(`cargo run --release --example large_dataset`):",
        "",
        text_block(folder, "large-dataset.txt"),
    ]
    for name, label in (("mpi-large-1.txt", "1 rank"), ("mpi-large-2.txt", "2 ranks")):
        if read(folder, name) is not None:
            out += [f"MPI, {label} (the argument is MiB per result; best of 3; MB = 10^6 bytes):", "", text_block(folder, name)]
    return "\n".join(out)


def compare_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def find(rows, implementation, workers, size=None):
    for row in rows:
        if row["implementation"] == implementation and int(row["workers"]) == workers and (
            size is None or int(row["size"]) == size
        ):
            return row
    return None


def compare_section(folder, facts):
    runs = sorted(folder.glob("compare-*.csv"))
    if not runs:
        return "## Side by side with Python and faer\n\n(not run)\n"
    first = compare_rows(runs[0])
    all_runs = [compare_rows(run) for run in runs]
    out = [
        "## Side by side with Python and faer (`benches/compare/run.sh`)",
        "",
        f"`benches/compare/run.sh`, run {len(runs)} times in a row. The tables and plots are the "
        "first run (its CSV is [compare-results.csv](compare-results.csv)); the goals below give "
        "the range over all runs. NumPy "
        f"{facts.get('numpy', '?')} from PyPI with its bundled OpenBLAS (`OPENBLAS_CORETYPE` unset, "
        "threads set by `OPENBLAS_NUM_THREADS`); faer `partial_piv_lu().inverse()` with 1 or 2 "
        "threads. Every implementation runs once untimed before its timed run. Plots drawn by "
        "`cargo run --release --example plot -- docs/compare-results.csv docs`:",
        "",
        "![pi speedup](pi_speedup.svg) ![inversion GFLOP/s](invert_gflops.svg)",
        "",
        "### Pi: darts per second",
        "",
        "| workload | implementation | workers | rate |",
        "|---|---|---|---|",
    ]
    for row in first:
        if row["workload"].startswith("pi"):
            value = float(row["rate"])
            shown = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
            out.append(f"| {row['workload']} | {row['implementation']} | {row['workers']} | {shown} {row['unit']} |")
    sizes = sorted({int(r["size"]) for r in first if r["workload"] == "invert"})
    out += [
        "",
        "### Matrix inversion (the lesson's A = R∘Rᵀ), GFLOP/s counting 2n³",
        "",
        "| n | workers | parpool threads | NumPy (OpenBLAS) | faer | parpool / NumPy | parpool / faer | residual parpool / NumPy / faer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        for workers in (1, 2):
            p = find(first, "parpool-threads", workers, n)
            numpy = find(first, "numpy-openblas", workers, n)
            faer = find(first, "faer", workers, n)
            if not (p and numpy and faer):
                continue
            pr, nr, fr = (float(r["rate"]) for r in (p, numpy, faer))
            out.append(
                f"| {n} | {workers} | {pr:.1f} | {nr:.1f} | {fr:.1f} | {pr / nr:.2f} | {pr / fr:.2f} "
                f"| {float(p['residual']):.1e} / {float(numpy['residual']):.1e} / {float(faer['residual']):.1e} |"
            )
    out += ["", "Other backends, first run (GFLOP/s):", "", "| n | backend | workers | GFLOP/s |", "|---|---|---|---|"]
    for row in first:
        if row["workload"] == "invert" and row["implementation"] in ("parpool-serial", "parpool-processes"):
            out.append(f"| {row['size']} | {row['implementation']} | {row['workers']} | {float(row['rate']):.1f} |")
    goal_sizes = [n for n in (2000, 4000) if n in sizes]
    if goal_sizes:
        out += ["", "### Goals of issue 16, over every run", "", "| goal | n | ratio in each run | met in every run |", "|---|---|---|---|"]
        for label, workers, other, target in (
            ("2 workers: at least 1.0x faer", 2, "faer", 1.0),
            ("2 workers: at least 1.1x NumPy", 2, "numpy-openblas", 1.1),
            ("1 worker: at least 1.0x faer", 1, "faer", 1.0),
        ):
            for n in goal_sizes:
                ratios = []
                for rows in all_runs:
                    p, o = find(rows, "parpool-threads", workers, n), find(rows, other, workers, n)
                    if p and o:
                        ratios.append(float(p["rate"]) / float(o["rate"]))
                met = "yes" if ratios and min(ratios) >= target else "no"
                out.append(f"| {label} | {n} | {', '.join(f'{r:.2f}' for r in ratios)} | {met} |")
        for n in goal_sizes:
            ratios = []
            for rows in all_runs:
                p, numpy = find(rows, "parpool-threads", 2, n), find(rows, "numpy-openblas", 2, n)
                if p and numpy:
                    ratios.append(float(p["residual"]) / float(numpy["residual"]))
            met = "yes" if ratios and max(ratios) <= 10 else "no"
            out.append(f"| residual within 10x of NumPy's | {n} | {', '.join(f'{r:.1f}x' for r in ratios)} | {met} |")
        out += ["", "How much the runs differ, parpool threads (slowest / fastest of the runs):", "", "| n | workers | GFLOP/s per run | spread |", "|---|---|---|---|"]
        for n in goal_sizes:
            for workers in (1, 2):
                rates = [float(r["rate"]) for rows in all_runs if (r := find(rows, "parpool-threads", workers, n))]
                if rates:
                    out.append(f"| {n} | {workers} | {', '.join(f'{x:.1f}' for x in rates)} | {spread(rates):.2f} |")
    return "\n".join(out) + "\n"


def pi_invert_criterion_section(folder):
    pi = criterion(folder / "criterion-pi")
    invert = criterion(folder / "criterion-invert")
    kernel_group = next((g for g, _ in pi if g.startswith("pi_kernel")), "pi_kernel")
    out = [
        "## Monte-Carlo pi and inversion at n = 500 (criterion)",
        "",
        group_table(pi, kernel_group, " (`cargo bench --bench pi`; the group name says which SIMD kernel the CPU got)"),
        group_table(pi, "pi_estimate_16x1e7", " (the estimate through `map_reduce`, per backend and worker count)"),
        group_table(invert, "invert_500", " (`cargo bench --bench invert`; rate = flops (2n³) per second)"),
    ]
    return "\n".join(out)


def mpi_section(folder):
    if read(folder, "mpi-balance-2x1.txt") is None:
        return "## MPI\n\n(MPI was not available in this run)\n"
    out = [
        "## MPI: balance, fail-fast and pi across ranks",
        "",
        "**Uneven tasks and a failing rank** (`mpiexec -n R target/release/examples/mpi_balance "
        "--workers T --repeats 3`): 48 tasks, one per chunk, even ones sleep 100 ms and odd ones "
        "1 ms, so the figures measure scheduling even with more ranks × threads than cores; then "
        "400 tasks of 50 ms where every task that runs on rank 1 panics.",
        "",
    ]
    for name in ("mpi-balance-2x1.txt", "mpi-balance-2x2.txt", "mpi-balance-4x1.txt"):
        out += [text_block(folder, name, drop=("slow tasks",))]
    out += [
        "**pi** (`mpiexec -n R target/release/examples/pi_mpi --tasks 16 --samples S "
        "--workers T`; every run of every layout, interleaved, with the time rank 0 prints):",
        "",
        "| layout | seconds per run | best | spread | speedup (best) | estimate |",
        "|---|---|---|---|---|---|",
    ]
    base = None
    for layout in ("1x1", "2x1", "1x2"):
        times, estimates = [], set()
        for path in sorted(folder.glob(f"mpi-pi-{layout}-*.txt")):
            match = re.search(r"pi ~ ([\d.]+).* in ([\d.]+) s", path.read_text())
            if match:
                estimates.add(match.group(1))
                times.append(float(match.group(2)))
        if not times:
            continue
        base = base or min(times)
        ranks, threads = layout.split("x")
        out.append(
            f"| {ranks} rank(s) × {threads} thread(s) | {', '.join(f'{t:.3f}' for t in times)} | {min(times):.3f} s "
            f"| {spread(times):.2f} | {base / min(times):.2f} | {', '.join(sorted(estimates))} |"
        )
    return "\n".join(out) + "\n"


def gather_memory_section(folder):
    runs = {call: read(folder, f"mpi-gather-memory-{call}.txt") for call in ("map", "gather")}
    if None in runs.values():
        return ""
    pattern = re.compile(
        r"rank (\d+)/(\d+): \S+ of (\d+) MiB of results: peak RSS (\d+) MiB, (\d+) MiB before "
        r"the call: the call cost (\d+) MiB; holds (\d+) MiB"
    )
    rows = {}
    commands = []
    total = "?"
    for call, text in runs.items():
        command, _, body = text.partition("\n")
        commands.append(f"`{command.removeprefix('$ ')}`")
        for match in pattern.finditer(body):
            rank, _, total, peak, before, cost, held = match.groups()
            rows.setdefault(int(rank), {})[call] = (peak, before, cost, held)
    out = [
        "## Results where they are needed: `map` against `map_gather`",
        "",
        f"{' and '.join(commands)}, each in a job of its own: 32 results of `Vec<u8>` making "
        f"{total} MiB in all, one chunk each, one thread per rank. Peak resident memory "
        "(`VmHWM`) of each rank before and after the call; the difference is what the call "
        "cost that rank. With `map` every rank ends up holding every result; with "
        "`map_gather` only rank 0 does, and the others drop each result once encoded.",
        "",
        "| rank | `map`: peak, cost of the call | `map_gather`: peak, cost of the call | results held after `map_gather` |",
        "|---|---|---|---|",
    ]
    for rank in sorted(rows):
        mapped = rows[rank].get("map", ("?",) * 4)
        gathered = rows[rank].get("gather", ("?",) * 4)
        out.append(
            f"| {rank} | {mapped[0]} MiB, {mapped[2]} MiB | {gathered[0]} MiB, {gathered[2]} MiB "
            f"| {gathered[3]} MiB |"
        )
    return "\n".join(out) + "\n"


def stream_section(folder):
    return "\n".join([
        "## Streaming a file larger than memory",
        "",
        "The `stream` example: a generated file counted in 1 MB blocks through `imap`, 2 "
        "workers; the last line is the process's peak resident memory:",
        "",
        text_block(folder, "stream.txt"),
    ])


def journal_section(folder):
    return "\n".join([
        "## What a journal costs",
        "",
        "`cargo run --release --example journal_cost` (`examples/journal_cost.rs`): each call "
        "plain and journaled, in turn, best of 5 (10^6 tiny items: the best and the median of 21, "
        "since such a call's time depends on whether its memory is already faulted in); large results written to a journal and read "
        "back, beside `dd ... conv=fdatasync` on the same disk (`target/`); one `fdatasync`. "
        "Goals (issue 29): pi's `map_reduce` at most 1.05x, 10^6 tiny items at most 3x.",
        "",
        text_block(folder, "journal-cost.txt"),
    ])


def python_section(folder):
    text = read(folder, "python-compare.md")
    if text is None:
        return "## The Python package\n\n(not run)\n"
    command, _, body = text.partition("\n")
    return "\n".join([
        "## The Python package against NumPy and `multiprocessing.Pool`",
        "",
        "In a fresh virtual environment with `pip install maturin numpy ./python`, "
        f"`{command.removeprefix('$ ')}` printed:",
        "",
        body,
    ])


def main():
    folder = pathlib.Path(sys.argv[1])
    facts = machine(folder)
    avx512 = facts.get("avx512", "?")
    header = [
        "# Benchmarks",
        "",
        f"Generated by `benches/report.sh` in one run on {facts.get('date', '?')}, at commit "
        f"`{facts.get('commit', '?')}`. Every number on this page comes from that run; nothing "
        "else ran on the machine meanwhile. Explanations of what changed and why are in "
        "[performance-notes.md](performance-notes.md).",
        "",
        f"- CPU: {facts.get('cpu', '?')}, {facts.get('cpus', '?')} CPUs available; "
        f"AVX-512: **{avx512}**; memory {facts.get('memory', '?')}",
        f"- {facts.get('rustc', '?')}; Python {facts.get('python', '?')}; NumPy {facts.get('numpy', '?')}; "
        f"MPI: {facts.get('mpi', 'none')}",
        "",
        "The machine is shared and noisy: compare ratios measured in the same run. Criterion "
        "rows give the median and its 95% confidence interval; other rows give every repeat or "
        "the best and the spread (slowest / best).",
        "",
    ]
    sections = [
        square_section(folder),
        small_call_section(folder),
        async_section(folder),
        processes_section(folder),
        large_results_section(folder),
        compare_section(folder, facts),
        pi_invert_criterion_section(folder),
        mpi_section(folder),
        gather_memory_section(folder),
        stream_section(folder),
        journal_section(folder),
        python_section(folder),
    ]
    print("\n".join(header) + "\n" + "\n".join(s.rstrip() + "\n" for s in sections), end="")


if __name__ == "__main__":
    main()
