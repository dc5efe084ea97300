"""Benchmark: the checks before submitting and the blind copy of large files.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_confidentiality.py [--quick]

What it measures and prints:

1. Confidentiality: building the name index of a 50,000-member roster (time, Python memory),
   then finding names in a 5,000-word submission (median of 5 runs) and checking a whole
   submission (answers + an extracted Word file).
2. Similarity: fingerprinting a 5,000-word submission, and comparing one fingerprint with
   5,000 stored ones (read back from JSON, as they would be from the database).
3. strip_metadata on a 200 MB MP4 video, a Word file holding a 200 MB picture and a PDF
   holding a 200 MB image (20 MB each with --quick): time and the peak resident memory of the
   process doing it above its size before the strip (each in its own process, so one case's
   peak does not hide another's). Goal: under 64 MB above idle, like uploads. Known limit:
   qpdf holds each PDF stream whole while writing it, so a PDF made of one 200 MB picture
   ("pdf-1") peaks at about twice that; a PDF of many pages (a scan) stays low.

Exits 1 when a strip goes over the memory goal or a check finds the wrong names.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lti_tool.evidence import documents  # noqa: E402
from lti_tool.evidence.confidentiality import (  # noqa: E402
    FileToCheck,
    IdentityIndex,
    Person,
    check,
)
from lti_tool.evidence.similarity import Fingerprint, fingerprint, most_similar  # noqa: E402

MB = 1024 * 1024
MEMORY_GOAL_MB = 64


def roster(size: int) -> list[Person]:
    rng = random.Random(1)
    given = [f"Given{n}" for n in range(500)] + ["Maria", "John", "Wei", "Fatima", "Olu"]
    family = [f"Family{n}" for n in range(700)] + ["Garcia", "Smith", "Chen", "Okafor"]
    people: set[tuple[str, str]] = set()
    while len(people) < size:
        people.add((rng.choice(given), rng.choice(family)))
    return [Person(name=f"{g} {f}", email=f"{g}.{f}@school.example".lower())
            for g, f in sorted(people)]  # fmt: skip


def median_time(work, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_confidentiality(folder: Path) -> bool:
    members = roster(50_000)
    learner = Person(name="Ada Lovelace", email="ada.lovelace@example.org")
    started = time.perf_counter()
    index = IdentityIndex(learner, members)
    built = time.perf_counter() - started
    tracemalloc.start()  # measured apart: tracing slows allocation down several times
    IdentityIndex(learner, members)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rng = random.Random(2)
    filler = [
        "the",
        "pupils",
        "worked",
        "in",
        "groups",
        "on",
        "fractions",
        "and",
        "Maria",
        "then",
        "Will",
        "wrote",
    ]
    words = [rng.choice(filler) for _ in range(5_000)]
    words[1_000:1_002] = members[42].name.split()
    words[3_000:3_002] = ["Ada", "Lovelace"]
    text = " ".join(words)
    hits = index.find(text)
    found = median_time(lambda: index.find(text))
    from tests.unit.document_samples import write_docx

    docx = write_docx(folder / "plan.docx")
    answers = {f"Part {p}, question {q}": text for p in (1, 2, 3) for q in (1, 2)}

    def whole() -> None:
        extracted = documents.extract(docx, documents.DOCX)
        check(index, answers, [FileToCheck("plan.docx", documents.DOCX, extracted)])

    checked = median_time(whole, 3)
    print("confidentiality, 50,000-member roster")
    print(
        f"  build index      {built:8.2f} s   {peak / MB:6.1f} MB Python memory, {len(index)} keys"
    )
    print(f"  find in 5,000 w  {found * 1000:8.1f} ms  {len(hits)} hits")
    print(f"  check 6 answers of 5,000 words + a Word file  {checked * 1000:8.1f} ms")
    expected = [members[42].name, "Ada Lovelace"]
    ok = [hit.matched for hit in hits] == expected
    if not ok:
        print(f"  WRONG: found {[hit.matched for hit in hits]}, expected {expected}")
    return ok


def bench_similarity() -> None:
    rng = random.Random(3)
    vocabulary = [f"w{n}" for n in range(20_000)]

    def essay(size: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(size))

    text = essay(5_000)
    made = median_time(lambda: fingerprint({"Part 1": text}), 3)
    stored = [
        json.dumps(fingerprint({"Part 1": essay(800), "Part 2": essay(400)}).to_json())
        for _ in range(5_000)
    ]
    new = fingerprint({"Part 1": text, "Part 2": essay(400)})
    started = time.perf_counter()
    earlier = [(n, Fingerprint.from_json(json.loads(data))) for n, data in enumerate(stored)]
    loaded = time.perf_counter() - started
    compared = median_time(lambda: most_similar(new, earlier, threshold=0.8), 3)
    size = statistics.mean(len(data) for data in stored)
    print("similarity")
    print(f"  fingerprint 5,000 words        {made * 1000:8.1f} ms  ({size / 1024:.1f} KB as JSON)")
    print(f"  read 5,000 stored fingerprints {loaded * 1000:8.1f} ms")
    print(f"  compare with 5,000             {compared * 1000:8.1f} ms")


def make_mp4(path: Path, size: int) -> None:
    from tests.unit.document_samples import write_mp4

    write_mp4(path, mdat_size=size)


def make_docx(path: Path, size: int) -> None:
    from tests.unit.document_samples import write_docx

    write_docx(path)
    block = bytes(range(256)) * 4096
    with (
        zipfile.ZipFile(path, "a") as package,
        package.open("word/media/image1.png", "w", force_zip64=True) as out,
    ):
        for _ in range(size // len(block)):
            out.write(block)


def _pdf_with_images(path: Path, size: int, images: int) -> None:
    import pikepdf

    from tests.unit.document_samples import write_pdf

    write_pdf(path, pages=[f"Page {n}" for n in range(images)])
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        for page in pdf.pages:
            image = pdf.make_stream(bytes(range(256)) * (size // images // 256))
            image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
            image.Width, image.Height, image.BitsPerComponent = 1024, 1024, 8
            image.ColorSpace, image.Filter = pikepdf.Name.DeviceRGB, pikepdf.Name.DCTDecode
            page.Resources.XObject = pikepdf.Dictionary(Im0=image)
        pdf.save(path, compress_streams=False)


def make_pdf(path: Path, size: int) -> None:
    """A scan-like PDF: one 2 MB picture per page."""
    _pdf_with_images(path, size, max(1, size // (2 * MB)))


def make_pdf_one_stream(path: Path, size: int) -> None:
    """The worst case for qpdf, which holds one whole stream at a time (twice): a single huge
    picture. Printed, not held to the goal: a known limit (see the module docstring)."""
    _pdf_with_images(path, size, 1)


KNOWN_LIMITS = {"pdf-1"}
CASES = {
    "mp4": (make_mp4, "video/mp4"),
    "docx": (make_docx, documents.DOCX),
    "pdf": (make_pdf, documents.PDF),
    "pdf-1": (make_pdf_one_stream, documents.PDF),
}


def _memory(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def strip_child(case: str, source: Path) -> None:
    """Runs in its own process: strip one file, print time and peak memory as JSON."""
    media_type = CASES[case][1]
    import lxml.etree  # noqa: F401  imported before measuring, like a warm worker
    import mutagen  # noqa: F401
    import pikepdf  # noqa: F401
    import PIL.Image  # noqa: F401
    import pypdf  # noqa: F401

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size
    idle = _memory("VmRSS")
    started = time.perf_counter()
    report = documents.strip_metadata(source, source.with_suffix(".copy"), media_type)
    elapsed = time.perf_counter() - started
    peak = _memory("VmHWM")
    print(json.dumps({"seconds": elapsed, "peak_above_idle": peak - idle,
                      "cleaned": report.cleaned}))  # fmt: skip


def bench_strip(folder: Path, size: int) -> bool:
    ok = True
    print(f"strip_metadata of {size // MB} MB files (peak resident memory above idle)")
    for case, (make, _) in CASES.items():
        source = folder / f"big.{case}"
        make(source, size)
        result = subprocess.run(  # noqa: S603 - this interpreter, this script
            [sys.executable, __file__, "--strip-child", case, str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"  {case}: failed\n{result.stderr}")
            ok = False
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        peak_mb = figures["peak_above_idle"] / MB
        mark = "ok" if peak_mb < MEMORY_GOAL_MB and figures["cleaned"] else "OVER GOAL"
        if case in KNOWN_LIMITS and figures["cleaned"]:
            mark = "known limit" if mark != "ok" else mark
        actual = source.stat().st_size / MB
        print(f"  {case:6} {actual:7.1f} MB  {figures['seconds']:6.2f} s  "
              f"{peak_mb:6.1f} MB peak  cleaned={figures['cleaned']}  {mark}")  # fmt: skip
        ok = ok and mark in ("ok", "known limit")
        source.unlink()
        source.with_suffix(".copy").unlink(missing_ok=True)
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 MB files instead of 200 MB")
    parser.add_argument("--strip-child", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.strip_child:
        strip_child(args.strip_child[0], Path(args.strip_child[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as name:
        folder = Path(name)
        ok = bench_confidentiality(folder)
        bench_similarity()
        ok = bench_strip(folder, (20 if args.quick else 200) * MB) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
