"""Reports: tidy rows -> tables -> CSV / HTML, sample grids and galleries (no torch import at module level)."""
