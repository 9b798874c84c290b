"""Multi-operand sums as carry-save (Wallace) trees of full adders: the binary popcounts.

A balanced tree of two-input adders maps each addition to a carry chain, even the many narrow
ones at its leaves. Reducing all operand bits column by column with full adders (three bits of
weight ``2**c`` become a sum bit at ``c`` and a carry bit at ``c+1``) until two rows remain,
then one carry-propagate adder, is the classic multiplier structure: a LUT holds a full adder's
sum or carry, and only the last adder uses a carry chain. For a 36-bit XNOR popcount on the
ECP5 that is 18 % fewer LUTs than the adder tree (``python -m bench.product_cost``, which also
compares it with Booth multipliers for fixed-point products: there Yosys' pass wins).

Signed operands need no sign extension: a bit of negative weight ``-b * 2**c`` is
``(1 - b) * 2**c - 2**c``, so its complement enters the columns and ``-2**c`` joins a constant
that enters once, as bits, at the end.
"""

from amaranth.hdl import Cat, Const, Shape, Signal, Value

__all__ = ["Operand", "carry_save_rows", "carry_save_sum"]


class Operand:
    """``value << shift``, negated if ``negate``; ``value`` signed or unsigned, any width."""

    def __init__(self, value, shift: int = 0, negate: bool = False):
        self.value, self.shift, self.negate = Value.cast(value), shift, negate

    def columns(self, width: int):
        """``[(column, bit)]`` and the constant that together equal this operand mod 2**width."""
        shape = self.value.shape()
        bits, constant = [], 0
        for i in range(shape.width):
            col = self.shift + i
            negative = (shape.signed and i == shape.width - 1) != self.negate
            if col >= width:
                continue
            bit = self.value[i]
            if negative:
                bits.append((col, ~bit))
                constant -= 1 << col
            else:
                bits.append((col, bit))
        return bits, constant


def carry_save_sum(m, operands, shape, name="csa"):
    """The sum of ``operands`` (:class:`Operand`\\ s or plain values) as a value of ``shape``.

    ``shape`` must hold the exact sum (the callers' accumulator shapes do); the arithmetic is
    modulo ``2**width`` and the result is read back in ``shape``. The tree is
    :func:`carry_save_rows`, then one carry-propagate adder.
    """
    shape = Shape.cast(shape)
    rows = carry_save_rows(m, operands, shape.width, name)
    total = (rows[0] + rows[1])[:shape.width]
    return total.as_signed() if shape.signed else total


def carry_save_rows(m, operands, width, name="csa"):
    """Two ``width``-bit rows whose sum modulo ``2**width`` is the sum of ``operands``: the
    full-adder levels of :func:`carry_save_sum` without its final adder (a pipeline register
    may sit between the two; a register of both rows is ``2*width`` bits where the operands
    can be many more, as an XNOR popcount's are). Each level's full adders of
    one column are two comb signals of module ``m`` (the sum bits and the carry bits, one bit
    per adder): as bare expressions, every level would copy the ones below it (a sum and a
    carry both read the same three bits) and the netlist would grow exponentially; as one
    signal per bit, a 32x288 PE array alone would be 18,000 signals to elaborate.
    """
    columns = [[] for _ in range(width)]
    constant = 0
    for op in operands:
        op = op if isinstance(op, Operand) else Operand(op)
        bits, c = op.columns(width)
        constant += c
        for col, bit in bits:
            columns[col].append(bit)
    constant %= 1 << width
    for col in range(width):
        if constant >> col & 1:
            columns[col].append(Const(1, 1))
    level = 0
    while max(len(col) for col in columns) > 2:
        nxt = [[] for _ in range(width)]
        for col, bits in enumerate(columns):
            k = len(bits) // 3
            if k:
                a, b, c = (Cat(*bits[j:3 * k:3]) for j in range(3))
                sums = Signal(k, name=f"{name}_l{level}_c{col}_s")
                m.d.comb += sums.eq(a ^ b ^ c)
                nxt[col].extend(sums[i] for i in range(k))
                if col + 1 < width:
                    carries = Signal(k, name=f"{name}_l{level}_c{col}_c")
                    m.d.comb += carries.eq((a & b) | (a & c) | (b & c))
                    nxt[col + 1].extend(carries[i] for i in range(k))
            nxt[col].extend(bits[3 * k:])
        columns = nxt
        level += 1
    return [Cat(*(col[r] if len(col) > r else Const(0, 1) for col in columns)) for r in range(2)]
