"""Upsampling and alignment as pure functions (FCN paper, section 3.3)."""
