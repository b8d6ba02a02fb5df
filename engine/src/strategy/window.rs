//! PLACEHOLDER (replaced in this same change).
