//! Ferrolite on an emulated Cortex-M: runs every golden input through the model, checks each
//! output byte for byte against TFLite Micro's, and reports instructions per inference (SysTick
//! under `-icount`), arena and stack peak. Exits 0 on success and non-zero on any mismatch, error,
//! panic or HardFault.
#![no_std]
#![no_main]

mod harness;
mod models;

use cortex_m_rt::entry;
use ferrolite::Interpreter;
use harness::{fail, print, print_number, Aligned16};

mod golden {
    use super::Aligned16;
    include!(concat!(env!("OUT_DIR"), "/golden.rs"));
}

fn check<T>(stage: &str, result: ferrolite::Result<T>) -> T {
    result.unwrap_or_else(|e| {
        print(stage);
        print(": ");
        fail(harness::error_name(&e))
    })
}

#[entry]
fn main() -> ! {
    static mut ARENA: Aligned16<[u8; golden::ARENA_BYTES]> = Aligned16([0; golden::ARENA_BYTES]);
    harness::paint_stack();
    let Some(mut peripherals) = cortex_m::Peripherals::take() else { fail("peripherals taken") };

    // The default: the state build.rs prepared on the host, so no model verification, planner or
    // prepare code is linked.
    #[cfg(not(feature = "on-device-prepare"))]
    // SAFETY: build.rs wrote `PREPARED` with `Interpreter::prepared_state` of this runtime, on an
    // interpreter it built with `Interpreter::new` from these model bytes and `models::resolver()`,
    // whose registrations `models::KERNELS` holds in the same order.
    let restored =
        unsafe { Interpreter::from_prepared(&golden::MODEL.0, &models::KERNELS, &mut ARENA.0, &golden::PREPARED) };
    #[cfg(not(feature = "on-device-prepare"))]
    let mut interpreter = check("restore", restored);
    // As TFLite Micro does it: verify the model, prepare every op and plan the arena on the board.
    #[cfg(feature = "on-device-prepare")]
    let resolver = check("resolver", models::resolver());
    #[cfg(feature = "on-device-prepare")]
    let mut interpreter = {
        let model = check("model", ferrolite::Model::from_bytes(&golden::MODEL.0));
        check("prepare", Interpreter::new(&model, &resolver, &mut ARENA.0, models::OPTIONS))
    };
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
            harness::start_systick(&mut peripherals.SYST);
        }
        check("invoke", interpreter.invoke());
        if k == 0 {
            let ticks = harness::stop_systick(&mut peripherals.SYST);
            let (per_tick, divisor) = golden::INSTRUCTIONS_PER_TICK;
            instructions = ticks * per_tick / divisor;
        }
        let expected = &golden::GOLDEN_OUTPUTS[k * golden::OUTPUT_BYTES..(k + 1) * golden::OUTPUT_BYTES];
        if check("output", interpreter.output_bytes(0)) != expected {
            print("sample ");
            print_number(k as u64);
            print(": ");
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
    print_number(harness::stack_peak() as u64);
    print("\n");
    harness::succeed()
}
