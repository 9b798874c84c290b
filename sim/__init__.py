"""cocotb + Verilator verification of the generated hardware against the spec."""
