//! The demos compiled into bughunt: each scenario's workload against both of its forms.

use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;

/// A demo workload: runs one form under a fault plan.
pub type DemoFn = fn(&FaultPlan) -> DemoRun;

include!(concat!(env!("OUT_DIR"), "/demos.rs"));

/// The broken and fixed runs of a template's demo, if it has one.
pub fn find(template_id: &str) -> Option<(DemoFn, DemoFn)> {
    DEMOS
        .iter()
        .find(|(id, _, _)| *id == template_id)
        .map(|(_, broken, fixed)| (*broken, *fixed))
}
