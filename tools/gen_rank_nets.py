"""Write src_cython/fc_rank_nets.h: median selection networks over 9 and 25 values
(Knuth's merge-exchange sorting network, pruned to the comparators the middle output
depends on), and the same for 3x3 and 5x5 boxes whose columns come presorted (the
comparators the sorted columns make redundant removed), as plain C functions of the
element type FCR_T that fc_rank_body.h includes once per type.

    python tools/gen_rank_nets.py > src_cython/fc_rank_nets.h
"""


def merge_exchange(n):
    t = max(1, (n - 1).bit_length())
    pairs = []
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            pairs.extend((i, i + d) for i in range(n - d) if i & p == r)
            if q == p:
                break
            d, q, r = q - p, q // 2, p
        p //= 2
    return pairs


def sorts(pairs, n):
    import random
    rng = random.Random(0)
    for _ in range(2000):
        v = [rng.random() for _ in range(n)]
        w = list(v)
        for a, b in pairs:
            if w[a] > w[b]:
                w[a], w[b] = w[b], w[a]
        if w != sorted(v):
            return False
    return True


def median_net(n):
    pairs = merge_exchange(n)
    assert sorts(pairs, n)
    need, kept = {n // 2}, []
    for a, b in reversed(pairs):
        lo, hi = a in need, b in need
        if lo or hi:
            kept.append((a, b, lo, hi))
            need |= {a, b}
    return kept[::-1]


def _steps(net):
    """The C statements of a pruned network: a compare-exchange where both outputs are
    needed, else the one min or max that is."""
    out = []
    for a, b, lo, hi in net:
        if lo and hi:
            out.append(f"FCR_NAME(fcr_sort2)(&p{a}, &p{b});")
        elif lo:
            out.append(f"p{a} = FCR_MIN(p{a}, p{b});")
        else:
            out.append(f"p{b} = FCR_MAX(p{a}, p{b});")
    return out


def _function(comment, head, params, body, result=None):
    """A C function: ``head`` then the parameters, wrapped under the opening parenthesis;
    the body's statements packed into lines of up to 96 characters."""
    lines = [f"/* {comment} */"]
    text = f"{head}("
    pad = " " * len(text)
    for i, p in enumerate(params):
        item = p + (", " if i < len(params) - 1 else ")")
        if len(text) + len(item.rstrip()) > 96:
            lines.append(text.rstrip())
            text = pad
        text += item
    lines.append(text.rstrip())
    lines.append("{")
    line = ""
    for stmt in body:
        if line and len(line) + 1 + len(stmt) > 92:
            lines.append("    " + line)
            line = ""
        line = f"{line} {stmt}" if line else stmt
    if line:
        lines.append("    " + line)
    if result is not None:
        lines.append(f"    return {result};")
    lines.append("}")
    return "\n".join(lines)


def emit(n):
    # scalar locals p0.. (not an array: gcc vectorizes the loop around the inlined call)
    body = _steps(median_net(n))
    text = _function(f"the median (rank {n // 2}) of p0 .. p{n - 1}: {len(body)} min/max steps",
                     f"FCR_INLINE FCR_T FCR_NAME(fcr_net{n})",
                     [f"FCR_T p{i}" for i in range(n)], body, f"p{n // 2}")
    return text, len(body)


def columns_net(kh, kw):
    """A median network over kh*kw values given as kw columns each already sorted
    (index col * kh + t, ascending in t): merge-exchange with the comparators the sorted
    columns make redundant removed (0-1 principle over every input with sorted columns),
    pruned to the middle output."""
    import itertools

    n = kh * kw
    cols = [[0] * (kh - z) + [1] * z for z in range(kh + 1)]
    inputs = [sum(c, []) for c in itertools.product(cols, repeat=kw)]
    net = []
    for a, b in merge_exchange(n):
        if all(w[a] <= w[b] for w in inputs):
            continue
        net.append((a, b))
        for w in inputs:
            if w[a] > w[b]:
                w[a], w[b] = w[b], w[a]
    for w in inputs:
        assert w == sorted(w)
    need, kept = {n // 2}, []
    for a, b in reversed(net):
        lo, hi = a in need, b in need
        if lo or hi:
            kept.append((a, b, lo, hi))
            need |= {a, b}
    return kept[::-1]


def emit_columns(kh, kw):
    n = kh * kw
    body = _steps(columns_net(kh, kw))
    params = [f"FCR_T p{col * kh + t}" for col in range(kw) for t in range(kh)]
    text = _function(f"the median of {kw} sorted columns of {kh} (p{{c * {kh} + t}}: rank t of "
                     f"column c): {len(body)} min/max steps",
                     f"FCR_INLINE FCR_T FCR_NAME(fcr_cnet{kh}x{kw})", params, body,
                     f"p{n // 2}")
    return text, len(body)


def emit_sort(k):
    """Sort k values in place (full merge-exchange network)."""
    body = [f"FCR_NAME(fcr_sort2)(p{a}, p{b});" for a, b in merge_exchange(k)]
    text = _function(f"sort *p0 .. *p{k - 1} in place: {len(body)} compare-exchanges",
                     f"FCR_INLINE void FCR_NAME(fcr_sort{k})",
                     [f"FCR_T* p{i}" for i in range(k)], body)
    return text, len(body)


HEADER = """\
/* Generated by tools/gen_rank_nets.py: do not edit. The median selection networks of the
 * rank filters as plain C functions of one element type, inlined into the loops of
 * fc_rank_body.h (which vectorize across output positions).
 *
 * No include guard: fc_rank_body.h includes this file once per element type, with FCR_T,
 * FCR_NAME, FCR_INLINE, FCR_MIN, FCR_MAX and fcr_sort2 (a compare-exchange) defined.
 */"""


if __name__ == "__main__":
    print(HEADER)
    for n in (9, 25):
        print()
        print(emit(n)[0])
    for k in (3, 5):
        print()
        print(emit_sort(k)[0])
        print()
        print(emit_columns(k, k)[0])
