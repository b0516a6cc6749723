"""docs/method.md, the method in the repository's own words, cannot rot: every `file.py:name` it (or README)
gives exists in the code, it covers every step of README's "Read the code" table, every "docs/method.md,
section N" reference in the repository names a section it has, and no file points at a specification kept
outside the repository. The code is read with ast, not imported: a renamed function fails here by name."""
import ast
import functools
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
README = ROOT / "README.md"
CODE_NAME = re.compile(r"`((?:[\w-]+/)*[\w-]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)`")  # `file.py:Class.method`
SECTION_REF = re.compile(r"docs/method\.md,? sections? (\d+(?:\.\d+)?(?:(?:,| and|, and) \d+(?:\.\d+)?)*)")
OUTSIDE_SPEC = "METHOD" + ".md"  # written in two parts, so that this file does not mention it itself


# ----------------------------------------------------------------------------- helpers

def names_in(body):
    """{name: node} of what a module or class body defines: functions, classes and assigned names."""
    found = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            found.update((t.id, node) for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = node
    return found


@functools.lru_cache(maxsize=None)
def parsed(file):
    """The syntax tree of a Python file, or None where there is no such file."""
    return ast.parse(file.read_text(), str(file)) if file.is_file() else None


def unresolved(text, root=ROOT):
    """The `file.py:name` references of text that name no file, or nothing that file defines (a class's
    methods and attributes are looked up inside the class; a function has no names to look into)."""
    missing = []
    for path, dotted in CODE_NAME.findall(text):
        node = parsed(root / path)
        for part in dotted.split("."):
            body = node.body if isinstance(node, (ast.Module, ast.ClassDef)) else []
            node = names_in(body).get(part)
        if node is None:
            missing.append(f"{path}:{dotted}")
    return missing


def tracked_files(root=ROOT):
    """The repository's files: those git tracks and the new ones it does not ignore, as they are in the working
    tree; without git, every file below root but .git's."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout
        return [root / name for name in dict.fromkeys(out.decode().split("\0")) if name and (root / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts]


def mentioning(files, needle):
    """The text files among files that contain needle (files with a NUL byte are binary and skipped)."""
    hits = []
    for path in files:
        data = path.read_bytes() if path.is_file() else b""
        if b"\0" not in data and needle.encode() in data:
            hits.append(path)
    return hits


def read_the_code_table(readme_text):
    """The `file.py:name` references of the code column of README's "Read the code" table, row by row."""
    section = readme_text.split("## Read the code", 1)[1].split("\n## ", 1)[0]
    rows = [cells(line) for line in section.splitlines() if line.startswith("|")][2:]  # without header and rule
    return [CODE_NAME.findall(row[-1]) for row in rows]


def cells(row):
    """The cells of a markdown table row; an escaped pipe (\\|) stays inside its cell."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def uncovered(rows, doc_text):
    """The files and `file.py:name` references of the table's rows that doc_text never names."""
    missing = []
    for refs in rows:
        for path, dotted in refs:
            if f"`{path}:{dotted}`" not in doc_text:
                missing.append(f"{path}:{dotted}")
            if f"`{path}:" not in doc_text and path not in missing:
                missing.append(path)
    return missing


def sections(doc_text):
    """The numbers of the numbered headings of doc_text: "## 5. ROSE-CD ..." gives 5, "### 5.3 One ..." 5.3."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", doc_text, re.M))


def anchors(doc_text):
    """GitHub's anchors of doc_text's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", doc_text, re.M)}


def bad_section_refs(text, known):
    """The "docs/method.md, section N" numbers of text that are not among the known sections."""
    return [n for ref in SECTION_REF.findall(text) for n in re.findall(r"\d+(?:\.\d+)?", ref) if n not in known]


# ----------------------------------------------------------------------------- the page

def test_every_code_name_the_page_gives_exists():
    text = METHOD.read_text()
    assert len(CODE_NAME.findall(text)) > 60  # the page names its code throughout
    assert unresolved(text) == []


def test_every_code_name_the_readme_gives_exists():
    assert unresolved(README.read_text()) == []


def test_a_name_that_does_not_exist_is_reported():
    text = ("`sde.py:SDE.mu` `model.py:PRESETS` `distill.py:Config.steps` `tests/test_method_doc.py:names_in` "
            "`sde.py:SDE.nu` `sde.py:pc_sample.x` `nowhere.py:f` `data.py:HOP.real`")
    assert unresolved(text) == ["sde.py:SDE.nu", "sde.py:pc_sample.x", "nowhere.py:f", "data.py:HOP.real"]


def test_the_page_covers_every_step_of_the_read_the_code_table():
    rows = read_the_code_table(README.read_text())
    assert len(rows) >= 15 and all(rows), "every row of the table names its code"
    files = {path for refs in rows for path, _ in refs}
    assert {"data.py", "sde.py", "model.py", "teacher.py", "distill.py", "enhance.py", "evaluate.py"} <= files
    assert uncovered(rows, METHOD.read_text()) == []


def test_a_step_the_page_leaves_out_is_reported():
    rows = [[("sde.py", "SDE.mu")], [("evaluate.py", "score"), ("sde.py", "SDE.g")]]
    assert uncovered(rows, "`sde.py:SDE.mu` and `sde.py:SDE.g`") == ["evaluate.py:score", "evaluate.py"]


# ----------------------------------------------------------------------------- references into the page

def test_every_section_reference_names_a_section_of_the_page():
    text = METHOD.read_text()
    known = sections(text)
    assert {"1", "2", "3", "3.2", "4", "4.3", "5", "5.3", "6", "7"} <= known
    refs = {}
    for path in tracked_files():
        if path.suffix in (".py", ".md") and path != Path(__file__).resolve():  # its examples are wrong on purpose
            refs[path.relative_to(ROOT).as_posix()] = bad_section_refs(path.read_text(), known)
    assert sum(len(SECTION_REF.findall(p.read_text())) for p in ROOT.glob("*.py")) >= 15  # the code points in
    assert {path: bad for path, bad in refs.items() if bad} == {}
    # README's two tables give the sections of each file and each step in a column of their own
    for table in re.findall(r"^\|[^\n]*\| docs/method\.md \|[^\n]*\n(?:\|[^\n]*\n)+", README.read_text(), re.M):
        lines = table.splitlines()
        column = cells(lines[0]).index("docs/method.md")
        numbers = [n for line in lines[2:] for n in re.findall(r"\d+(?:\.\d+)?", cells(line)[column])]
        assert numbers and [n for n in numbers if n not in known] == []
    # links to a heading of the page, from README and from the page itself
    links = re.findall(r"\(docs/method\.md#([^)]+)\)", README.read_text()) + re.findall(r"\]\(#([^)]+)\)", text)
    assert links and set(links) <= anchors(text)


def test_a_reference_to_a_missing_section_is_reported():
    known = {"1", "4", "4.3", "5"}
    text = "(docs/method.md, section 4.3) (docs/method.md, sections 1, 4 and 9) (docs/method.md section 8.1)"
    assert bad_section_refs(text, known) == ["9", "8.1"]
    assert anchors("## 5. ROSE-CD: robust consistency distillation\n### Where (and why)") == {
        "5-rose-cd-robust-consistency-distillation", "where-and-why"}


def test_no_file_points_at_a_specification_outside_the_repository():
    files = tracked_files()
    assert ROOT / "docs" / "method.md" in files and ROOT / "sde.py" in files
    assert mentioning(files, OUTSIDE_SPEC) == []


def test_a_file_that_mentions_it_is_found(tmp_path):
    (tmp_path / "a.py").write_text(f'"""The loss ({OUTSIDE_SPEC} 5)."""\n')
    (tmp_path / "b.md").write_text("docs/method.md, section 5\n")
    (tmp_path / "c.pt").write_bytes(b"\0" + OUTSIDE_SPEC.encode())  # binary: not a reference
    files = sorted(tmp_path.iterdir())
    assert mentioning(files, OUTSIDE_SPEC) == [tmp_path / "a.py"]
    assert set(tracked_files(tmp_path)) == set(files)  # no git repository there: every file below it
