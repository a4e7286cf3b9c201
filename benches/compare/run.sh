#!/usr/bin/env bash
# Side-by-side comparison of parpool with Python (multiprocessing, NumPy,
# OpenBLAS) and faer, in one run on one machine, into one CSV.
#
#   benches/compare/run.sh [OUT.csv]        # default: target/compare/results.csv
#   QUICK=1 benches/compare/run.sh          # small sizes, seconds not minutes (CI)
#
# Then: cargo run --release --example plot -- OUT.csv docs/
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-target/compare/results.csv}
work=target/compare
mkdir -p "$work" "$(dirname "$out")"

if [[ "${QUICK:-0}" == 1 ]]; then
    sizes=(300 600); pure_tasks=4; pure_samples=20000; numpy_samples=1000000
    pi_tasks=8; pi_samples=1000000; darts=10000000
else
    sizes=(500 1000 2000 4000); pure_tasks=10; pure_samples=1000000; numpy_samples=100000000
    pi_tasks=16; pi_samples=100000000; darts=1000000000
fi

# A virtual environment with NumPy and joblib, made once.
venv=$work/venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check numpy joblib
fi
py=$venv/bin/python

cargo build --quiet --release --example pi --example invert --example baselines

comma_sizes=$(IFS=,; echo "${sizes[*]}")
{
    echo "workload,implementation,workers,size,seconds,rate,unit,residual"
    "$py" benches/compare/compare.py pi-pure "$pure_tasks" "$pure_samples"
    "$py" benches/compare/compare.py pi-numpy 1 "$numpy_samples"
    target/release/examples/baselines --n "$comma_sizes" --darts "$darts" --save "$work" | tail -n +2
    target/release/examples/pi --csv --tasks "$pi_tasks" --samples "$pi_samples" --workers 2 | tail -n +2
    for n in "${sizes[@]}"; do
        for threads in 1 2; do
            # The environment exports OPENBLAS_CORETYPE=Haswell, which holds
            # OpenBLAS to AVX2 kernels; unset it so NumPy runs at its best.
            env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads \
                "$py" benches/compare/compare.py inv "$n" "$work/lesson_$n.f64" "$threads"
        done
        target/release/examples/invert --csv --n "$n" --workers 2 | tail -n +2
    done
} | tee "$out"
echo "wrote $out" >&2
