//! What every firmware binary here shares: semihosting output without `core::fmt`, exit codes,
//! stack painting, SysTick instruction counting, and the fault and panic handlers (all exit
//! non-zero). `src/bin/baseline.rs` links this alone, so `measure.sh` can subtract it from the
//! firmware and report the runtime's own flash.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use ferrolite::Error;

/// A 16-byte aligned wrapper for the model bytes and the arena.
#[repr(C, align(16))]
pub struct Aligned16<T>(pub T);

/// Value painted over the free stack to find its peak use afterwards.
const STACK_PAINT: u32 = 0xC0FF_EE11;

/// SysTick is a 24-bit down-counter.
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// SysTick wraps (every 2^24 ticks) while an inference runs.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);

extern "C" {
    /// End of `.bss`/`.uninit`: the lowest address the stack may grow to (cortex-m-rt).
    static __sheap: u32;
    /// Top of the stack (cortex-m-rt).
    static _stack_start: u32;
}

/// Writes text to the host's stdout (semihosting).
pub fn print(text: &str) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(text.as_bytes());
    }
}

/// Prints an unsigned number in decimal.
pub fn print_number(mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if let Ok(text) = core::str::from_utf8(&digits[at..]) {
        print(text);
    }
}

pub fn fail(what: &str) -> ! {
    print("FAIL: ");
    print(what);
    print("\n");
    loop {
        debug::exit(EXIT_FAILURE);
    }
}

/// The runtime error's variant name (its `Display` would pull in `core::fmt`).
pub fn error_name(e: &Error) -> &'static str {
    match e {
        Error::Flatbuffer { .. } => "malformed flatbuffer",
        Error::UnsupportedSchemaVersion(_) => "unsupported schema version",
        Error::MissingField(field) => or(field.as_str(), "missing field"),
        Error::IndexOutOfRange { .. } => "index out of range",
        Error::UnsupportedOp { .. } => "unsupported op (not registered?)",
        Error::CustomOp { .. } => "custom op",
        Error::UnsupportedType { .. } => "unsupported tensor type",
        Error::BadShape { .. } => "bad shape",
        Error::BufferSizeMismatch { .. } => "constant buffer size mismatch",
        Error::BadQuantization { .. } => "bad quantization",
        Error::SparseTensor { .. } => "sparse tensor",
        Error::BadGraph { .. } => "bad graph",
        Error::InvalidOp { reason, .. } => or(reason.as_str(), "invalid op"),
        Error::ArenaTooSmall { .. } => "arena too small",
        Error::TooMany { .. } => "too many",
        Error::NoSuchTensor { .. } => "no such tensor",
        Error::TypeMismatch { .. } => "type mismatch",
        Error::Misaligned => "misaligned",
        Error::PreparedStateMismatch(reason) => or(reason.as_str(), "prepared state mismatch"),
    }
}

/// `text`, or `fallback` when the runtime was built without its `error-text` feature.
fn or(text: &'static str, fallback: &'static str) -> &'static str {
    if text.is_empty() {
        fallback
    } else {
        text
    }
}

/// Fills the unused stack below the current frame with [`STACK_PAINT`].
#[inline(always)]
pub fn paint_stack() {
    let bottom = core::ptr::addr_of!(__sheap) as usize;
    // Leave a margin below the current stack pointer for this function's own use.
    let top = cortex_m::register::msp::read() as usize - 64;
    let mut at = bottom;
    while at < top {
        // SAFETY: [__sheap, sp - 64) is RAM that nothing uses yet (no heap, interrupts not enabled).
        unsafe { core::ptr::write_volatile(at as *mut u32, STACK_PAINT) };
        at += 4;
    }
}

/// Deepest stack use so far, in bytes: from the top of the stack to the lowest overwritten word.
pub fn stack_peak() -> usize {
    let bottom = core::ptr::addr_of!(__sheap) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut at = bottom;
    // SAFETY: reads words of the stack region, which is mapped RAM.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == STACK_PAINT {
        at += 4;
    }
    top - at
}

/// Starts counting core clock ticks from zero, with wraps counted in the SysTick handler.
pub fn start_systick(syst: &mut SYST) {
    SYSTICK_WRAPS.store(0, Ordering::Relaxed);
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The cleared counter reloads on the first tick; count from there.
    while SYST::get_current() == 0 {}
}

/// Ticks since [`start_systick`], counting wraps.
pub fn stop_systick(syst: &mut SYST) -> u64 {
    cortex_m::interrupt::free(|_| {
        syst.disable_counter();
        syst.disable_interrupt();
        let mut wraps = SYSTICK_WRAPS.load(Ordering::Relaxed) as u64;
        if SCB::is_pendst_pending() {
            wraps += 1;
            SCB::clear_pendst();
        }
        wraps * (SYSTICK_RELOAD as u64 + 1) + (SYSTICK_RELOAD - SYST::get_current()) as u64
    })
}

/// Reports success to the host (QEMU exits with status 0).
pub fn succeed() -> ! {
    loop {
        debug::exit(EXIT_SUCCESS);
    }
}

#[exception]
fn SysTick() {
    // While SysTick runs only this handler writes the counter (thumbv6m has no atomic add).
    SYSTICK_WRAPS.store(SYSTICK_WRAPS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    fail("HardFault")
}

#[exception]
unsafe fn DefaultHandler(_irq: i16) {
    fail("unexpected exception")
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    print("panic");
    if let Some(location) = info.location() {
        print(" at ");
        print(location.file());
        print(":");
        print_number(location.line() as u64);
    }
    fail("panic")
}
