//! Dense matrix inversion through the pool: blocked Gauss-Jordan elimination
//! with partial pivoting.
//!
//! # The algorithm
//!
//! In-place Gauss-Jordan inversion turns `A` into `A⁻¹` with `2n³` flops, as
//! many as LU + triangular inversion + product, but as one uniform sweep:
//! each pivot step multiplies the whole matrix from the left by an
//! elimination matrix `M` that differs from the identity in the pivot
//! columns only, and stores those columns of `M` where the pivot columns
//! were. The blocked form takes `nb` pivot columns at a time:
//!
//! 1. **Panel** (see look-ahead below): the `n × nb` block column is
//!    factored recursively, halves at a time, so even the panel runs mostly
//!    in matrix products. Row swaps for partial pivoting are recorded.
//! 2. **Update** (through the pool): every other block column `C` gets the
//!    same row swaps, then `C ← Z + P·B`, where `B` is `C`'s old pivot rows,
//!    `Z` is `C` with those rows zeroed and `P` is the factored panel. Block
//!    columns are independent, so each is one task; the product `P·B` (the
//!    `2n·nb·w` flops of a `w`-column task) runs on faer's matrix-multiply
//!    kernel, single-threaded inside the task.
//!
//! **Look-ahead.** Only the first panel is factored on the calling thread.
//! In every step the task of the block column right after the panel (the
//! next panel) goes first: it applies the step and then factors that panel
//! at once, while the other tasks update the rest. The next step starts
//! with its panel ready, and no worker waits for a serial factorisation
//! between steps.
//!
//! At the end, the row swaps are undone as column swaps. The pool runs
//! everything but the first panel.
//!
//! On the thread and serial backends tasks update their block column in
//! place. On backends whose workers live in other processes (a forked child
//! writes to its own copy), each task also returns its block column, which
//! costs a copy of the matrix through the pipes per step.
//!
//! Besides the products, what is left is memory traffic, kept small: the
//! working copy of the matrix asks Linux for 2 MiB pages (a 4000 × 4000
//! matrix is otherwise 31,250 page faults, and the row swaps miss the TLB);
//! the narrow panel kernel runs on AVX-512 or AVX2 when the CPU has them;
//! the old pivot rows are copied into a buffer each thread keeps.
//!
//! # Errors
//!
//! Non-finite input is an `Err` that [`is_invalid_input`]. So is a matrix
//! that is singular to working precision: one whose best pivot in some
//! column is at most `n · ε · max|aᵢⱼ|` (ε = 2.2e-16). In exact arithmetic a
//! singular matrix has a zero pivot, but in floating point it usually gets a
//! tiny one instead, and dividing by it returns huge, meaningless numbers
//! whose residual *relative to ‖X‖* still looks small; the threshold turns
//! that into an error. (NumPy and LAPACK only reject exact zeros.) A result
//! that is not finite is an error too. No NaNs are ever returned as success.
//!
//! [`is_invalid_input`]: crate::Error::is_invalid_input

use crate::Error;
use faer::{Accum, MatMut, MatRef, Par};
use parpool::Pool;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// Pivot columns per step when the caller does not choose: `n / 6`, rounded
/// down to a multiple of 16, within `16..=384`. Wider blocks make the
/// products faster (their inner dimension is the block size) but put more
/// of the work in the panel, which one task factors (overlapped with the
/// other tasks' updates by the look-ahead); on the reference machine
/// 320-384 was best for n = 2000 and 4000 (`docs/benchmarks.md`).
pub fn default_block_size(n: usize) -> usize {
    (n / 6).clamp(16, 384) / 16 * 16
}

/// Panels at most this wide are factored column by column.
const UNBLOCKED_WIDTH: usize = 16;

/// A square matrix of `f64`, stored column by column.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    n: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// The `n × n` matrix with entry `(row, col)` = `entry(row, col)`.
    pub fn from_fn(n: usize, mut entry: impl FnMut(usize, usize) -> f64) -> Matrix {
        let mut data = Vec::with_capacity(n * n);
        for col in 0..n {
            for row in 0..n {
                data.push(entry(row, col));
            }
        }
        Matrix { n, data }
    }

    /// The identity matrix.
    pub fn identity(n: usize) -> Matrix {
        Matrix::from_fn(n, |row, col| f64::from(u8::from(row == col)))
    }

    /// The lesson's test matrix: `A = R ∘ Rᵀ` (elementwise), `R` uniform in
    /// `[0, 1)` drawn from Xoshiro256++ seeded with `seed`. Symmetric, with
    /// positive entries.
    pub fn lesson(n: usize, seed: u64) -> Matrix {
        let mut generator = Xoshiro256PlusPlus::seed_from_u64(seed);
        let random: Vec<f64> = (0..n * n)
            .map(|_| (generator.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
            .collect();
        Matrix::from_fn(n, |row, col| random[row * n + col] * random[col * n + row])
    }

    /// The number of rows (and columns).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Entry `(row, col)`.
    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.data[row + col * self.n]
    }

    /// The entries, column by column.
    pub fn as_column_major(&self) -> &[f64] {
        &self.data
    }

    fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.data, self.n, self.n)
    }

    /// The product `self · other` (faer, on the calling thread).
    ///
    /// # Panics
    ///
    /// If the sizes differ.
    pub fn multiply(&self, other: &Matrix) -> Matrix {
        assert_eq!(self.n, other.n, "matrix sizes differ");
        let mut product = Matrix {
            n: self.n,
            data: vec![0.0; self.n * self.n],
        };
        let n = self.n;
        faer::linalg::matmul::matmul(
            MatMut::from_column_major_slice_mut(&mut product.data, n, n),
            Accum::Replace,
            self.view(),
            other.view(),
            1.0,
            Par::Seq,
        );
        product
    }

    /// The Frobenius norm `sqrt(Σ a²)`.
    pub fn frobenius_norm(&self) -> f64 {
        self.data.iter().map(|x| x * x).sum::<f64>().sqrt()
    }
}

/// `‖A·X − I‖_F / (‖A‖_F · ‖X‖_F)`: about 1e-16 times the condition
/// number for a good inverse.
pub fn relative_residual(a: &Matrix, x: &Matrix) -> f64 {
    let mut product = a.multiply(x);
    for i in 0..a.n {
        product.data[i + i * a.n] -= 1.0;
    }
    product.frobenius_norm() / (a.frobenius_norm() * x.frobenius_norm())
}

/// The flop count of inverting an `n × n` matrix, `2n³`, for GFLOP/s.
pub fn flops(n: usize) -> f64 {
    2.0 * (n as f64).powi(3)
}

/// Inverts `a` through `pool`, with [`default_block_size`] pivot columns per
/// step.
///
/// ```
/// use parpool::Pool;
/// use parpool_workloads::invert::{Matrix, invert, relative_residual};
///
/// let a = Matrix::lesson(100, 1);
/// let x = invert(&Pool::new(), &a)?;
/// assert!(relative_residual(&a, &x) < 1e-12);
///
/// let singular = Matrix::from_fn(3, |row, col| (row + col) as f64);
/// assert!(invert(&Pool::new(), &singular).unwrap_err().is_invalid_input());
/// # Ok::<(), parpool_workloads::Error>(())
/// ```
pub fn invert(pool: &Pool, a: &Matrix) -> Result<Matrix, Error> {
    invert_with_block_size(pool, a, default_block_size(a.n))
}

/// [`invert`] with `block_size` pivot columns per step (at least 1).
pub fn invert_with_block_size(pool: &Pool, a: &Matrix, block_size: usize) -> Result<Matrix, Error> {
    let n = a.n;
    if let Some(index) = first_non_finite(&a.data) {
        return Err(Error::InvalidInput(format!(
            "the matrix has a non-finite entry {} at ({}, {})",
            a.data[index],
            index % n,
            index / n
        )));
    }
    let block_size = block_size.max(1);
    let largest = a.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let shape = Shape {
        n,
        tiny_pivot: n as f64 * f64::EPSILON * largest,
    };
    let shares_memory = pool.capabilities().shares_memory;
    let mut work = copy_to_huge_pages(&a.data);
    let mut all_swaps = Vec::new();
    // The first panel is factored here; every later one by the look-ahead
    // task of the step before (see below), while the other tasks update.
    let first_width = block_size.min(n);
    let mut swaps = Vec::new();
    factor_panel(
        &mut work[..first_width * n],
        shape,
        0,
        first_width,
        &mut swaps,
    )?;
    for start in (0..n).step_by(block_size) {
        let width = block_size.min(n - start);
        let next = start + width;
        let next_width = block_size.min(n - next);
        let (left, rest) = work.split_at_mut(start * n);
        let (panel, right) = rest.split_at_mut(width * n);
        let panel: &[f64] = panel;
        // Look-ahead: the block column right after the panel is the next
        // panel. Its task updates it first and factors it at once, and it
        // goes first so a worker starts on it while the others update the
        // rest: the next step's panel is ready when this step ends, and no
        // worker waits for a serial factorisation between steps.
        let (next_panel, far_right) = right.split_at_mut(next_width * n);
        let targets: Vec<(bool, &mut [f64])> = std::iter::once((true, next_panel))
            .filter(|(_, columns)| !columns.is_empty())
            .chain(
                left.chunks_mut(block_size * n)
                    .map(|columns| (false, columns)),
            )
            .chain(
                far_right
                    .chunks_mut(block_size * n)
                    .map(|columns| (false, columns)),
            )
            .collect();
        let offsets: Vec<usize> = block_offsets(n, start, width, block_size);
        let step_swaps = &swaps;
        let updated = pool.map(
            |(is_next, columns): (bool, &mut [f64])| {
                apply_step(columns, panel, n, start, width, step_swaps);
                let mut next_swaps = Vec::new();
                let factored = if is_next {
                    factor_panel(columns, shape, next, next_width, &mut next_swaps).map_err(
                        |error| match error {
                            Error::InvalidInput(why) => why,
                            other => other.to_string(),
                        },
                    )
                } else {
                    Ok(())
                };
                let copy = (!shares_memory).then(|| columns.to_vec());
                (copy, factored.map(|()| next_swaps))
            },
            targets,
        )?;
        let mut next_swaps = Vec::new();
        for (offset, (columns, factored)) in offsets.into_iter().zip(updated) {
            if let Some(columns) = columns {
                work[offset..offset + columns.len()].copy_from_slice(&columns);
            }
            next_swaps.extend(factored.map_err(Error::InvalidInput)?);
        }
        all_swaps.append(&mut swaps);
        swaps = next_swaps;
    }
    // Undo the row swaps as column swaps, last first.
    for &(first, second) in all_swaps.iter().rev() {
        // A swap is (pivot row, a row below it), so `first < second`.
        let (left, right) = work.split_at_mut(second * n);
        left[first * n..(first + 1) * n].swap_with_slice(&mut right[..n]);
    }
    if let Some(index) = first_non_finite(&work) {
        return Err(Error::InvalidInput(format!(
            "the inverse overflowed at ({}, {}): the matrix is too ill-conditioned",
            index % n,
            index / n
        )));
    }
    Ok(Matrix { n, data: work })
}

/// The index of the first entry of `values` that is infinite or NaN. The
/// test runs 64 entries at a time without stopping early inside them, so
/// it compiles to vector instructions.
fn first_non_finite(values: &[f64]) -> Option<usize> {
    let chunk = values
        .chunks(64)
        .position(|chunk| !chunk.iter().fold(true, |all, x| all & x.is_finite()))?;
    let offset = chunk * 64;
    values[offset..]
        .iter()
        .position(|x| !x.is_finite())
        .map(|index| offset + index)
}

/// A copy of `values` in memory the kernel is asked to back with 2 MiB
/// pages (on Linux). A 4000 × 4000 matrix is 31,250 pages of 4 KiB: a page
/// fault for each on first touch, and a TLB miss for many of the row swaps.
fn copy_to_huge_pages(values: &[f64]) -> Vec<f64> {
    let mut copy = Vec::with_capacity(values.len());
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = copy.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + copy.capacity() * size_of::<f64>()) / HUGE * HUGE;
        if end > first {
            // SAFETY: MADV_HUGEPAGE only changes how the kernel backs pages
            // of this process's own, still untouched allocation (whole
            // pages inside it); it never changes their contents.
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
        }
    }
    copy.extend_from_slice(values);
    copy
}

/// Where each update task's block column starts in the column-major data,
/// in the order the tasks are made: the next panel (if any), the block
/// columns left of the panel, then the rest right of the next panel.
fn block_offsets(n: usize, start: usize, width: usize, block_size: usize) -> Vec<usize> {
    let next = start + width;
    let next_panel = (next < n).then_some(next * n);
    let left = (0..start).step_by(block_size).map(|col| col * n);
    let far_right = (next + block_size..n)
        .step_by(block_size)
        .map(|col| col * n);
    next_panel
        .into_iter()
        .chain(left)
        .chain(far_right)
        .collect()
}

/// Applies one elimination step to `columns` (an `n × m` block of other
/// columns): the step's row swaps, then `columns ← Z + panel · B`, where
/// `B` is the old rows `pivot_row..pivot_row + width` and `Z` is `columns`
/// with those rows zeroed.
fn apply_step(
    columns: &mut [f64],
    panel: &[f64],
    n: usize,
    pivot_row: usize,
    width: usize,
    swaps: &[(usize, usize)],
) {
    let m = columns.len() / n;
    SCRATCH.with_borrow_mut(|old_rows| {
        old_rows.clear();
        old_rows.resize(width * m, 0.0);
        gather_and_update(columns, panel, n, pivot_row, width, swaps, old_rows);
    });
}

thread_local! {
    /// [`apply_step`]'s copy of the old pivot rows, kept between calls: a
    /// fresh megabyte per task was a fresh mapping, and page faults, each
    /// time.
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`apply_step`] with `old_rows` to hold the old pivot rows.
fn gather_and_update(
    columns: &mut [f64],
    panel: &[f64],
    n: usize,
    pivot_row: usize,
    width: usize,
    swaps: &[(usize, usize)],
    old_rows: &mut [f64],
) {
    let m = columns.len() / n;
    for (col, column) in columns.chunks_exact_mut(n).enumerate() {
        for &(first, second) in swaps {
            column.swap(first, second);
        }
        let pivot_rows = &mut column[pivot_row..pivot_row + width];
        old_rows[col * width..(col + 1) * width].copy_from_slice(pivot_rows);
        pivot_rows.fill(0.0);
    }
    faer::linalg::matmul::matmul(
        MatMut::from_column_major_slice_mut(columns, n, m),
        Accum::Add,
        MatRef::from_column_major_slice(&panel[..n * width], n, width),
        MatRef::from_column_major_slice(old_rows, width, m),
        1.0,
        Par::Seq,
    );
}

/// What every panel step needs to know about the whole matrix.
#[derive(Clone, Copy)]
struct Shape {
    /// Rows (and columns) of the matrix.
    n: usize,
    /// A best pivot at most this large means "singular".
    tiny_pivot: f64,
}

/// Factors the `n × width` panel whose first column is column (and pivot
/// row) `first` of the matrix: afterwards the panel holds the columns of the
/// elimination matrix, and `swaps` the row swaps, in order.
fn factor_panel(
    panel: &mut [f64],
    shape: Shape,
    first: usize,
    width: usize,
    swaps: &mut Vec<(usize, usize)>,
) -> Result<(), Error> {
    if width <= UNBLOCKED_WIDTH {
        return factor_panel_unblocked(panel, shape, first, width, swaps);
    }
    let n = shape.n;
    let half = width / 2;
    let (left, right) = panel.split_at_mut(half * n);
    let mut left_swaps = Vec::new();
    factor_panel(left, shape, first, half, &mut left_swaps)?;
    apply_step(right, left, n, first, half, &left_swaps);
    let mut right_swaps = Vec::new();
    factor_panel(right, shape, first + half, width - half, &mut right_swaps)?;
    apply_step(left, right, n, first + half, width - half, &right_swaps);
    swaps.extend(left_swaps);
    swaps.extend(right_swaps);
    Ok(())
}

crate::simd::multiversion! {
    /// Column-by-column Gauss-Jordan on a narrow panel; a best pivot of at
    /// most `tiny_pivot` in magnitude means the matrix is singular.
    ///
    /// Compiled for AVX-512, AVX2 and the x86-64 baseline (SSE2), the
    /// CPU's best chosen at run time: the baseline's two lanes made this 8%
    /// of a 4000 × 4000 inversion. Only products and differences of single
    /// elements are computed (no fused multiply-add, no sums), so every
    /// version gives the same bits.
    fn factor_panel_unblocked / factor_panel_unblocked_at(
        panel: &mut [f64],
        shape: Shape,
        first: usize,
        width: usize,
        swaps: &mut Vec<(usize, usize)>,
    ) -> Result<(), Error> = factor_panel_unblocked_any;
}

/// [`factor_panel_unblocked`] for whatever instructions it is compiled
/// with (inlined into each caller).
#[inline(always)]
fn factor_panel_unblocked_any(
    panel: &mut [f64],
    shape: Shape,
    first: usize,
    width: usize,
    swaps: &mut Vec<(usize, usize)>,
) -> Result<(), Error> {
    let Shape { n, tiny_pivot } = shape;
    let mut factors = vec![0.0; n];
    for step in 0..width {
        let pivot_row = first + step;
        let column = &panel[step * n..(step + 1) * n];
        let (best, magnitude) = column[pivot_row..]
            .iter()
            .enumerate()
            .map(|(offset, value)| (pivot_row + offset, value.abs()))
            .fold((pivot_row, -1.0), |best, candidate| {
                if candidate.1 > best.1 {
                    candidate
                } else {
                    best
                }
            });
        if magnitude <= tiny_pivot || !magnitude.is_finite() {
            return Err(Error::InvalidInput(format!(
                "the matrix is singular to working precision: the best pivot for column \
                 {pivot_row} is {magnitude:.3e}, at most n·ε·max|a| = {tiny_pivot:.3e}"
            )));
        }
        if best != pivot_row {
            for column in panel.chunks_exact_mut(n) {
                column.swap(best, pivot_row);
            }
            swaps.push((pivot_row, best));
        }
        factors.copy_from_slice(&panel[step * n..(step + 1) * n]);
        let inverse = 1.0 / factors[pivot_row];
        for (col, column) in panel.chunks_exact_mut(n).enumerate() {
            if col == step {
                for (value, factor) in column.iter_mut().zip(&factors) {
                    *value = -factor * inverse;
                }
                column[pivot_row] = inverse;
            } else {
                let scaled = column[pivot_row] * inverse;
                for (value, factor) in column.iter_mut().zip(&factors) {
                    *value -= factor * scaled;
                }
                column[pivot_row] = scaled;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpool::BackendKind;

    fn serial() -> Pool {
        Pool::builder().kind(BackendKind::Serial).build().unwrap()
    }

    #[test]
    fn small_inverses_are_exact_enough_for_every_block_size() {
        let a = Matrix::lesson(37, 3);
        for block_size in [1, 2, 5, 16, 17, 33, 37, 64] {
            let x = invert_with_block_size(&serial(), &a, block_size).unwrap();
            let residual = relative_residual(&a, &x);
            assert!(residual < 1e-13, "block {block_size}: residual {residual}");
        }
    }

    #[test]
    fn pivoting_handles_a_zero_diagonal() {
        let a = Matrix::from_fn(3, |row, col| {
            [[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [4.0, -3.0, 8.0]][row][col]
        });
        let x = invert(&serial(), &a).unwrap();
        // The exact inverse is [[-4.5, 7, -1.5], [-2, 4, -1], [1.5, -2, 0.5]].
        let expected = [[-4.5, 7.0, -1.5], [-2.0, 4.0, -1.0], [1.5, -2.0, 0.5]];
        for (row, expected_row) in expected.iter().enumerate() {
            for (col, value) in expected_row.iter().enumerate() {
                assert!((x.get(row, col) - value).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn singular_and_non_finite_inputs_are_errors() {
        let singular = Matrix::from_fn(4, |row, col| {
            if row == 3 {
                2.0 * (col as f64 + 1.0)
            } else {
                ((row + 1) * (col + 2)) as f64
            }
        });
        let error = invert(&serial(), &singular).unwrap_err();
        assert!(error.is_invalid_input(), "{error}");
        assert!(error.to_string().contains("singular"), "{error}");
        let mut data = Matrix::identity(3);
        data.data[4] = f64::NAN;
        let error = invert(&serial(), &data).unwrap_err();
        assert!(
            error.to_string().contains("non-finite entry NaN at (1, 1)"),
            "{error}"
        );
        assert_eq!(invert(&serial(), &Matrix::identity(0)).unwrap().n(), 0);
    }

    #[test]
    fn a_matrix_singular_only_in_its_last_panel_is_found_by_the_look_ahead() {
        // Columns 10 and 11 are equal: the rank deficiency shows only when
        // the last panel (factored by the previous step's look-ahead task)
        // is factored.
        let n = 12;
        let mut a = Matrix::from_fn(n, |row, col| {
            let col = col.min(10);
            if row == col {
                10.0
            } else {
                1.0 / (1.0 + row as f64 + col as f64)
            }
        });
        for row in 0..n {
            a.data[row + 11 * n] = a.data[row + 10 * n];
        }
        let threads = Pool::builder()
            .kind(parpool::BackendKind::Threads)
            .workers(2)
            .build()
            .unwrap();
        for block_size in [1, 2, 3, 5] {
            for pool in [&serial(), &threads] {
                let error = invert_with_block_size(pool, &a, block_size).unwrap_err();
                assert!(error.is_invalid_input(), "{error}");
                let text = error.to_string();
                assert!(text.contains("singular"), "{text}");
                assert!(!text.contains("invalid input: invalid input"), "{text}");
            }
        }
    }

    #[test]
    fn every_compiled_version_of_the_panel_kernel_gives_the_same_bits() {
        let n = 53;
        let a = Matrix::lesson(n, 5);
        let shape = Shape { n, tiny_pivot: 0.0 };
        type Swaps = Vec<(usize, usize)>;
        let factor = |kernel: &dyn Fn(&mut [f64], &mut Swaps)| {
            // Columns 3..3 + UNBLOCKED_WIDTH, pivot rows from 3.
            let mut panel = a.data[3 * n..(3 + UNBLOCKED_WIDTH) * n].to_vec();
            let mut swaps = Vec::new();
            kernel(&mut panel, &mut swaps);
            (panel.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), swaps)
        };
        let baseline = factor(&|panel, swaps| {
            factor_panel_unblocked_any(panel, shape, 3, UNBLOCKED_WIDTH, swaps).unwrap()
        });
        assert!(!baseline.1.is_empty(), "the test matrix needs row swaps");
        let chosen = factor(&|panel, swaps| {
            factor_panel_unblocked(panel, shape, 3, UNBLOCKED_WIDTH, swaps).unwrap()
        });
        assert_eq!(chosen, baseline);
        for level in crate::simd::Level::available() {
            let compiled = factor(&|panel, swaps| {
                factor_panel_unblocked_at(level, panel, shape, 3, UNBLOCKED_WIDTH, swaps).unwrap()
            });
            assert_eq!(compiled, baseline, "{level:?}");
        }
    }

    #[test]
    fn the_first_non_finite_entry_is_found_anywhere() {
        for len in [0, 1, 63, 64, 65, 200] {
            let mut values = vec![1.0; len];
            assert_eq!(first_non_finite(&values), None);
            for index in [0, len / 2, len.saturating_sub(1)] {
                if index < len {
                    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                        values[index] = bad;
                        assert_eq!(first_non_finite(&values), Some(index), "len {len}");
                        values[index] = 1.0;
                    }
                }
            }
        }
    }

    #[test]
    fn the_lesson_matrix_is_symmetric() {
        let a = Matrix::lesson(20, 9);
        for row in 0..20 {
            for col in 0..20 {
                assert_eq!(a.get(row, col), a.get(col, row));
                assert!((0.0..1.0).contains(&a.get(row, col)));
            }
        }
    }
}
