//! Kernels compiled for more than one instruction set, with the CPU's best
//! chosen at run time: the crate is built for the x86-64 baseline (SSE2),
//! and a loop that autovectorizes runs two to four times faster when it is
//! also compiled for AVX2 or AVX-512.

/// The instruction sets a kernel is compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The x86-64 baseline, or any other architecture.
    Portable,
    /// AVX2.
    Avx2,
    /// AVX-512F with AVX-512VL.
    Avx512,
}

impl Level {
    /// The widest level this CPU runs.
    pub(crate) fn best() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
        Level::Portable
    }

    /// `"avx512"`, `"avx2"` or `"portable"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Portable => "portable",
        }
    }

    /// Every level this CPU runs, narrowest first.
    #[cfg(test)]
    pub(crate) fn available() -> impl Iterator<Item = Level> {
        [Level::Portable, Level::Avx2, Level::Avx512]
            .into_iter()
            .filter(|&level| level <= Level::best())
    }
}

/// Defines `$name`, which runs `$generic` (an `#[inline(always)]` function
/// of the same arguments) compiled for the CPU's best [`Level`], and `$at`,
/// which runs it compiled for a given level (a level the CPU lacks panics).
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        fn $name:ident / $at:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $generic:path;
    ) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) -> $ret {
            $at($crate::simd::Level::best(), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] compiled for `level`.")]
        fn $at(level: $crate::simd::Level, $($arg: $ty),*) -> $ret {
            assert!(
                level <= $crate::simd::Level::best(),
                "this CPU cannot run {} code",
                level.name()
            );
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl")]
            fn avx512($($arg: $ty),*) -> $ret {
                $generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) -> $ret {
                $generic($($arg),*)
            }
            match level {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX-512F and AVX-512VL (checked above).
                $crate::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX2 (checked above).
                $crate::simd::Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => $generic($($arg),*),
            }
        }
    };
}

pub(crate) use multiversion;
