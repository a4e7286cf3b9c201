#!/usr/bin/env bash
# Every benchmark of the project in one run, rendered into docs/benchmarks.md,
# docs/compare-results.csv and the plots, so the page never mixes runs.
#
#   benches/report.sh            # about 33 minutes on 2 cores; nothing else should run
#   QUICK=1 benches/report.sh    # small sizes, into target/report/benchmarks.md only:
#                                # a check that the whole pipeline works
#
# Raw outputs stay in target/report/ (criterion folders, CSVs, the examples'
# printed tables); benches/report.py turns them into the page. MPI rows need
# mpiexec and the `mpi` feature's system packages (see README); without them
# the page says MPI was not run. Needs python3 with venv (the comparison and
# the Python package each get a virtual environment under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/report
quick=${QUICK:-0}
page=docs/benchmarks.md
criterion_args=()
runs=(1 2 3)
pi_samples=400000000
large_mib=200
gather_mib=1024
stream_mb=300
dataset_gib=4
python_args=()
if [[ $quick == 1 ]]; then
    page=$out/benchmarks.md
    criterion_args=(--quick --warm-up-time 0.2 --measurement-time 0.5)
    runs=(1 2)
    pi_samples=4000000
    large_mib=8
    gather_mib=64
    stream_mb=20
    dataset_gib=1
    # The large-parent rows at 1 GiB only (1, 4 and 8 in a full run).
    export PARPOOL_BENCH_PARENT_GIB=1
    python_args=(--quick)
fi
rm -rf "$out"
mkdir -p "$out"

say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }
# record FILE COMMAND...: the command line, then its output (stderr dropped:
# the failing-rank example prints its panics there), into $out/FILE.
record() {
    local file=$1
    shift
    { echo "\$ $*"; timeout 600 "$@" 2>/dev/null; } >"$out/$file"
}
# bench NAME FOLDER [CARGO ARGS]: one criterion bench, its results under $out/FOLDER.
bench() {
    CRITERION_HOME="$PWD/$out/$2" cargo bench --quiet --bench "$1" "${@:3}" -- "${criterion_args[@]}" >/dev/null
}

say "machine"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src workloads examples benches python || echo ' (with uncommitted changes)')"
    echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
    echo "cpus: $(nproc)"
    echo "avx512: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "rustc: $(rustc --version)"
    echo "python: $(python3 -c 'import platform; print(platform.python_version())')"
    if command -v mpichversion >/dev/null; then
        echo "mpi: MPICH $(mpichversion | sed -n 's/^MPICH Version:[[:space:]]*//p')"
    fi
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

cargo build --quiet --release --benches --examples

for run in "${runs[@]}"; do
    say "square, run $run"
    bench square "criterion-square-$run"
done
for run in "${runs[@]}"; do
    say "async, run $run"
    bench async "criterion-async-$run" --features async
done
say "processes"
bench processes criterion-processes
record multiprocessing_pool.txt python3 benches/compare/multiprocessing_pool.py
say "pi"
bench pi criterion-pi
say "invert"
bench invert criterion-invert

for run in "${runs[@]}"; do
    say "side by side, run $run"
    QUICK=$quick benches/compare/run.sh "$out/compare-$run.csv" >/dev/null
done
# The comparison's virtual environment holds NumPy; its version goes on the page.
echo "numpy: $(target/compare/venv/bin/python -c 'import numpy; print(numpy.__version__)')" >>"$out/machine.txt"
if [[ $quick == 1 ]]; then
    cargo run --quiet --release --example plot -- "$out/compare-1.csv" "$out"
else
    cp "$out/compare-1.csv" docs/compare-results.csv
    cargo run --quiet --release --example plot -- docs/compare-results.csv docs
fi

if command -v mpiexec >/dev/null && cargo build --quiet --release --features mpi \
    --example mpi_balance --example pi_mpi --example mpi_large_results --example mpi_gather_memory; then
    say "MPI"
    for layout in 2x1 2x2 4x1; do
        ranks=${layout%x*} threads=${layout#*x}
        record "mpi-balance-$layout.txt" mpiexec -n "$ranks" target/release/examples/mpi_balance \
            --workers "$threads" --repeats 3
    done
    for run in "${runs[@]}"; do
        for layout in 1x1 2x1 1x2; do
            ranks=${layout%x*} threads=${layout#*x}
            record "mpi-pi-$layout-$run.txt" mpiexec -n "$ranks" target/release/examples/pi_mpi \
                --tasks 16 --samples "$pi_samples" --workers "$threads"
        done
    done
    for ranks in 1 2; do
        record "mpi-large-$ranks.txt" mpiexec -n "$ranks" target/release/examples/mpi_large_results "$large_mib"
    done
    # Each call in a job of its own: a process's peak memory never goes down.
    for call in map gather; do
        record "mpi-gather-memory-$call.txt" mpiexec -n 4 target/release/examples/mpi_gather_memory \
            --total-mib "$gather_mib" --call "$call"
    done
fi

say "stream"
record stream.txt target/release/examples/stream --workers 2 --megabytes "$stream_mb"

say "large results and large parents"
record results-rate.txt target/release/examples/results_rate --mib "$large_mib"
record large-dataset.txt target/release/examples/large_dataset --gib "$dataset_gib" --calls 10

say "journal"
journal_args=()
if [[ $quick == 1 ]]; then
    journal_args=(--quick)
fi
record journal-cost.txt target/release/examples/journal_cost --dir target "${journal_args[@]}"

say "Python package"
venv=target/report-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check maturin numpy ./python
record python-compare.md "$venv/bin/python" python/benchmarks/compare.py "${python_args[@]}"

say "rendering $page"
python3 benches/report.py "$out" >"$page"
echo "wrote $page (and, unless QUICK, docs/compare-results.csv and the plots) from $out" >&2
