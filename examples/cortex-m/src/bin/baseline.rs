//! The firmware's harness without the runtime: same startup, semihosting output, SysTick
//! counting, stack painting and handlers, no model. `measure.sh` subtracts its flash from the
//! firmware's to get the flash of runtime + kernels alone (as TFLite Micro's figures were taken).
#![no_std]
#![no_main]

#[path = "../harness.rs"]
mod harness;

use cortex_m_rt::entry;
use ferrolite::Error;
use harness::{fail, print, print_number};

// The baseline uses only the board facts, not the model or the goldens.
#[allow(dead_code)]
mod golden {
    use super::harness::Aligned16;
    include!(concat!(env!("OUT_DIR"), "/golden.rs"));
}

#[entry]
fn main() -> ! {
    harness::paint_stack();
    let Some(mut peripherals) = cortex_m::Peripherals::take() else { fail("peripherals taken") };
    harness::start_systick(&mut peripherals.SYST);
    let ticks = harness::stop_systick(&mut peripherals.SYST);
    let (per_tick, divisor) = golden::INSTRUCTIONS_PER_TICK;
    // Opaque to the optimizer, so the error reporting stays linked as in the firmware.
    let error = core::hint::black_box(Error::Misaligned);
    if core::hint::black_box(false) {
        fail(harness::error_name(&error));
    }
    print("baseline on ");
    print(golden::BOARD);
    print(": no model\ninstructions_per_inference=");
    print_number(ticks * per_tick / divisor);
    print("\nstack_peak_bytes=");
    print_number(harness::stack_peak() as u64);
    print("\n");
    harness::succeed()
}
