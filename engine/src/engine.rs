//! PLACEHOLDER (replaced in this same change).
#[derive(Debug, Default, Clone)]
pub struct EngineConfig;
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineCounters;
#[derive(Debug)]
pub struct Engine;
