"""What the documentation says, read from docs/ for the tests that hold the daemon to it
(test_docs_errors.py, test_docs_examples.py): the error table of docs/errors.md, the error vocabulary
of include/sscard/error.h, the sections of docs/api.md and the errors each card method lists there.

Nothing here starts a process; the tests compare what the daemon answers with what this reads.
"""

import os
import re

import harness

# The sections of docs/api.md ("### name") whose text lists each card method's errors, besides
# the section that lists those of every card method.
COMMON_ERRORS_SECTION = 'Errors of every card method'
PIN_RULES_SECTION = 'PINs: the rules for all four methods'
METHOD_SECTIONS = {
    'card.read_basic': ['card.read_basic'],
    'card.read_items': ['card.read_items'],
    'card.internal_auth': ['card.internal_auth'],
    'card.verify_pin': [PIN_RULES_SECTION, 'card.verify_pin'],
    'card.change_pin': [PIN_RULES_SECTION, 'card.change_pin'],
    'card.reload_pin': [PIN_RULES_SECTION, 'card.reload_pin, card.unblock_pin'],
    'card.unblock_pin': [PIN_RULES_SECTION, 'card.reload_pin, card.unblock_pin'],
    'card.write_items': ['card.write_items'],
    'card.hsm_step1': ['card.hsm_step1, card.hsm_step2'],
    'card.hsm_step2': ['card.hsm_step1, card.hsm_step2'],
}

SW_RULE = 'sw'        # errors.md's std_code column "−(SW)…": −(SW1·256+SW2) when data.sw is there


def doc_path(name):
    return os.path.join(harness.SOURCE_DIR, 'docs', name)


def read_doc(name):
    with open(doc_path(name), encoding='utf-8') as f:
        return f.read()


def minus(text):
    """'−27267' (U+2212, as the docs write it) -> -27267."""
    return int(text.replace('\u2212', '-'))


def header_errors():
    """{name: (value, std_code, message)} from include/sscard/error.h's SSC_ERROR_LIST."""
    with open(os.path.join(harness.SOURCE_DIR, 'include', 'sscard', 'error.h')) as f:
        text = f.read()
    out = {}
    for m in re.finditer(r'X\((SSC_E\w+),\s*(-?\d+),\s*(-?\d+),\s*"((?:[^"\\]|\\.)*)"\)', text):
        out[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(4))
    return out


def errors_table():
    """{name: {'code': int, 'std': int | None | SW_RULE, 'std_text', 'message', 'todo'}} from the
    table of docs/errors.md: the code cell's first number, the std_code cell read as a number,
    "—" (None: no standard code and no status word) or "−(SW)…" (SW_RULE)."""
    out = {}
    for line in read_doc('errors.md').splitlines():
        m = re.match(r'\| `(SSC_E\w+)` \| ([^|]*)\| ([^|]*)\| ([^|]*)\| (.*) \|$', line)
        if not m:
            continue
        name, code, std, message, todo = (g.strip() for g in m.groups())
        if std.startswith('\u2212(SW)'):
            std_v = SW_RULE
        elif std.startswith('\u2014'):
            std_v = None
        else:
            std_v = minus(std.split()[0])
        out[name] = {'code': minus(code.split()[0]), 'std': std_v, 'std_text': std,
                     'message': message, 'todo': todo}
    return out


def api_sections():
    """{title: text} of docs/api.md's "### " sections (the text up to the next "##" heading)."""
    out, title, buf = {}, None, []
    for line in read_doc('api.md').splitlines():
        if line.startswith('#'):
            if title is not None:
                out[title] = '\n'.join(buf)
            title = line.lstrip('#').strip() if line.startswith('### ') else None
            buf = []
        elif title is not None:
            buf.append(line)
    if title is not None:
        out[title] = '\n'.join(buf)
    return out


def method_errors(method, sections=None):
    """The SSC_E* names docs/api.md lists for a card method: its own sections' and those of every
    card method."""
    sections = sections or api_sections()
    names = set()
    for title in METHOD_SECTIONS[method] + [COMMON_ERRORS_SECTION]:
        names |= set(re.findall(r'SSC_E[A-Z]+', sections.get(title, '')))
    return names


def expected_std_code(table, name, sw):
    """The std_code errors.md promises for error name with status word sw (a hex string or None):
    an int, or None when the reply must have none."""
    std = table[name]['std']
    if std == SW_RULE:
        return -int(sw, 16) if sw else None
    return std
