//! Ferrolite on an emulated Cortex-M: runs every golden input through the model, checks each
//! output byte for byte against TFLite Micro's, and reports instructions per inference (SysTick
//! under `-icount`), arena and stack peak. Exits 0 on success and non-zero on any mismatch, error,
//! panic or HardFault.
//!
//! The harness prints without `core::fmt`, so the only formatting code a `nm` can find in the
//! binary would come from the runtime.
#![no_std]
#![no_main]

mod models;

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use ferrolite::{Error, Interpreter, Model};

/// A 16-byte aligned wrapper for the model bytes and the arena.
#[repr(C, align(16))]
pub struct Aligned16<T>(pub T);

mod golden {
    use super::Aligned16;
    include!(concat!(env!("OUT_DIR"), "/golden.rs"));
}

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

fn print(text: &str) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(text.as_bytes());
    }
}

/// Prints an unsigned number in decimal.
fn print_number(mut n: u64) {
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

fn fail(what: &str) -> ! {
    print("FAIL: ");
    print(what);
    print("\n");
    loop {
        debug::exit(EXIT_FAILURE);
    }
}

/// The runtime error's variant name (its `Display` would pull in `core::fmt`).
fn error_name(e: &Error) -> &'static str {
    match e {
        Error::Flatbuffer(_) => "malformed flatbuffer",
        Error::UnsupportedSchemaVersion(_) => "unsupported schema version",
        Error::MissingField(field) => field,
        Error::IndexOutOfRange { what, .. } => what,
        Error::UnsupportedOp { .. } => "unsupported op (not registered?)",
        Error::CustomOp { .. } => "custom op",
        Error::UnsupportedType { .. } => "unsupported tensor type",
        Error::BadShape { .. } => "bad shape",
        Error::BufferSizeMismatch { .. } => "constant buffer size mismatch",
        Error::BadQuantization { .. } => "bad quantization",
        Error::SparseTensor { .. } => "sparse tensor",
        Error::BadGraph { reason, .. } => reason,
        Error::InvalidOp { reason, .. } => reason,
        Error::ArenaTooSmall { .. } => "arena too small",
        Error::TooMany { what, .. } => what,
        Error::NoSuchTensor { .. } => "no such tensor",
        Error::TypeMismatch { .. } => "type mismatch",
        Error::Misaligned => "misaligned",
    }
}

fn check<T>(stage: &str, result: ferrolite::Result<T>) -> T {
    result.unwrap_or_else(|e| {
        print(stage);
        print(": ");
        fail(error_name(&e))
    })
}

/// Fills the unused stack below the current frame with [`STACK_PAINT`].
#[inline(always)]
fn paint_stack() {
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
fn stack_peak() -> usize {
    let bottom = core::ptr::addr_of!(__sheap) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut at = bottom;
    // SAFETY: reads words of the stack region, which is mapped RAM.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == STACK_PAINT {
        at += 4;
    }
    top - at
}

fn start_systick(syst: &mut SYST) {
    SYSTICK_WRAPS.store(0, Ordering::Relaxed);
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Ticks since [`start_systick`], counting wraps.
fn stop_systick(syst: &mut SYST) -> u64 {
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

#[entry]
fn main() -> ! {
    static mut ARENA: Aligned16<[u8; golden::ARENA_BYTES]> = Aligned16([0; golden::ARENA_BYTES]);
    paint_stack();
    let Some(mut peripherals) = cortex_m::Peripherals::take() else { fail("peripherals taken") };

    let model = check("model", Model::from_bytes(&golden::MODEL.0));
    let resolver = check("resolver", models::resolver());
    let mut interpreter = check("prepare", Interpreter::new(&model, &resolver, &mut ARENA.0, models::OPTIONS));
    if interpreter.arena_used() != golden::ARENA_BYTES {
        fail("the arena the board uses differs from the build-time measurement");
    }

    let mut instructions = 0;
    for k in 0..golden::SAMPLES {
        interpreter.reset_variables();
        let input = &golden::GOLDEN_INPUTS[k * golden::INPUT_BYTES..(k + 1) * golden::INPUT_BYTES];
        let destination = check("input", interpreter.input_bytes_mut(0));
        if destination.len() != input.len() {
            fail("golden input size differs from the model's input");
        }
        destination.copy_from_slice(input);
        if k == 0 {
            start_systick(&mut peripherals.SYST);
        }
        check("invoke", interpreter.invoke());
        if k == 0 {
            let ticks = stop_systick(&mut peripherals.SYST);
            let (per_tick, divisor) = golden::INSTRUCTIONS_PER_TICK;
            instructions = ticks * per_tick / divisor;
        }
        let expected = &golden::GOLDEN_OUTPUTS[k * golden::OUTPUT_BYTES..(k + 1) * golden::OUTPUT_BYTES];
        if check("output", interpreter.output_bytes(0)) != expected {
            print("sample ");
            print_number(k as u64);
            fail("output differs from TFLite Micro's");
        }
    }

    print(models::MODEL_NAME);
    print(" on ");
    print(golden::BOARD);
    print(": ");
    print_number(golden::SAMPLES as u64);
    print(" samples byte-identical to TFLite Micro\ninstructions_per_inference=");
    print_number(instructions);
    print("\narena_bytes=");
    print_number(golden::ARENA_BYTES as u64);
    print("\nstack_peak_bytes=");
    print_number(stack_peak() as u64);
    print("\n");
    loop {
        debug::exit(EXIT_SUCCESS);
    }
}

#[exception]
fn SysTick() {
    // Only this handler writes the counter (thumbv6m has no atomic read-modify-write).
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
