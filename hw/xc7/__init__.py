"""The open Zynq-7000 / 7-series bitstream flow's last steps: FASM to configuration frames to
``.bit`` (:mod:`hw.xc7.bitstream`), from the Project X-Ray database (:mod:`hw.xc7.prjxray_db`)."""
