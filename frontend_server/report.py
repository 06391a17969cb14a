"""The printable lineup report (PDF) for the case file.

One document holds what a court or a reviewer asks about a lineup: the lineup as shown, the
culprit's descriptions, where every face came from (bundle hash, latent, operation chain,
precision), the presentation-parity check, the simulated and the real mock-witness results with
their intervals, and the statement that the fillers are synthetic. Built with fpdf2 from the
same pieces as the exports (``frontend_server.export``), so the report and the ZIP agree.
"""
from __future__ import annotations

import datetime as _dt
import io
from pathlib import Path

from fpdf import FPDF

from frontend_server import export
from frontend_server.daemon import session_id
from frontend_server.errors import ApiError
from frontend_server.simulation import simulate_lineup
from frontend_server.store import Store
from frontend_server.witness import results as witness_results

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")   # Debian's fonts-dejavu-core
RED = (170, 0, 0)


def lineup_report(store: Store, results_root: Path, bundle: Path, user_id: int,
                  lineup: dict) -> bytes:
    """The PDF report of a saved, complete lineup of user ``user_id``."""
    results_dir = Path(results_root) / session_id(user_id)
    shown = export.bundle_presentation(bundle)
    positions = export.lineup_faces(lineup, results_dir, shown.framing, shown.resolution)
    record = export.record(lineup, positions, shown.notice)
    try:
        simulation = simulate_lineup(lineup, results_dir, as_shown=True)
    except ApiError as exc:
        simulation = {"error": exc.message}
    tests = []
    for test in reversed(store.witness_tests(user_id, lineup["id"])):
        links = store.witness_links(test["id"])
        tests.append((test, witness_results(test, links, store.witness_imports(test["id"]))))
    return render(record, export.composite(positions, shown.notice), simulation, tests)


def render(record: dict, composite, simulation: dict, tests: list[tuple[dict, dict]]) -> bytes:
    """The report's PDF from the lineup's record (``export.record``), its composite image, the
    simulation (``simulate_lineup``) and the real mock-witness tests with their results."""
    pdf = _Report(record.get("notice"))
    lineup = record["lineup"]
    pdf.add_page()
    pdf.heading(f"Lineup report: {lineup.get('name') or lineup.get('id')}", size=16)
    pdf.para(f"Lineup {lineup.get('id')}, {lineup.get('size')} members, suspect at position "
             f"{lineup.get('suspect_position')}. Report made "
             f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}.")
    pdf.para(record["synthetic_fillers"] + " The suspect's photo is the only real one.")
    if lineup.get("notes"):
        pdf.para(f"Notes: {lineup['notes']}")
    buf = io.BytesIO()
    composite.save(buf, "PNG")
    buf.seek(0)
    width = pdf.epw
    pdf.image(buf, w=width, h=width * composite.height / composite.width)

    pdf.heading("Descriptions of the culprit")
    if tests:
        for test, _ in tests:
            traits = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in
                               (test.get("traits") or {}).items()) or "none given"
            title = test.get("title") or "Mock-witness test"
            pdf.para(f"{title}: \u201c{test['description']}\u201d (structured traits: "
                     f"{traits}).")
    else:
        pdf.para("No mock-witness test has been made for this lineup, so no description is on "
                 "record.")

    pdf.heading("Presentation")
    options = record["presentation"]
    pdf.para("Every member was brought to the model's resolution and resampled to the display "
             "size the same way" + (", with one tone and sharpness for all" if
                                    options["normalise"] else "") +
             (", in grey" if options["grayscale"] else "") + ".")
    parity = record["presentation_parity"]
    if parity["warnings"]:
        for w in parity["warnings"]:
            pdf.bullet(w["message"])
    else:
        pdf.para("No member stands out by sharpness, tone, colour or background.")

    pdf.heading("Simulated mock witnesses (a simulation, not evidence)")
    if "error" in simulation:
        pdf.para(simulation["error"])
    else:
        pdf.para(simulation["simulation"] + f" {simulation['n']} simulated witnesses of each "
                 f"kind, seed {simulation['seed']}; description: "
                 + (", ".join(f"{k.replace('_', ' ')} {v}" for k, v in
                              simulation["description"].items()) or "none") + ".")
        for name, key in (("Description witnesses", "description_witness"),
                          ("Resemblance witnesses", "resemblance_witness")):
            if simulation.get(key):
                pdf.bullet(f"{name}: {_measures_line(simulation[key])}")
        for flag in simulation["stand_out"]:
            pdf.bullet(flag["message"])

    pdf.heading("Mock-witness tests")
    if not tests:
        pdf.para("None yet.")
    for test, res in tests:
        pdf.subheading(f"{test.get('title') or 'Test'} ({test['id']})")
        pdf.para(res["in_words"])
        if res["fairness"]:
            f = res["fairness"]
            pdf.para("Choices per member: " + ", ".join(
                f"{i + 1}: {c}" for i, c in enumerate(res["counts"])) + ".")
            pdf.bullet(_measures_line(f))
            pdf.bullet(f"Verdict: {f['verdict']}")
        else:
            pdf.para(res["note"])

    pdf.heading("Provenance of every face")
    hashes = ", ".join(h[:16] for h in record["bundle_hashes"]) or "none"
    pdf.para(f"Models (bundle hashes): {hashes}.")
    for p in record["positions"]:
        pdf.bullet(_provenance(p))
    return bytes(pdf.output())


def _measures_line(f: dict) -> str:
    size = f["functional_size"]
    ci, share = f["tredoux_e_ci"], f["suspect_proportion_ci"]
    return (f"functional size {size:.2f}" if size is not None else
            f"functional size undefined ({f['functional_size_note']})") + (
        f"; Malpass's E {f['effective_size_malpass']:.2f} (adjusted "
        f"{f['effective_size_malpass_adjusted']:.2f}); Tredoux's E\u2032 {f['tredoux_e']:.2f} "
        f"[95 % CI {ci[0]:.2f}\u2013{ci[1]:.2f}]; suspect chosen by {f['suspect_count']} of "
        f"{f['n']} ({100 * f['suspect_proportion']:.0f} %, 95 % CI {100 * share[0]:.0f}\u2013"
        f"{100 * share[1]:.0f} %; chance {100 * f['chance']:.0f} %, binomial p = "
        f"{f['binomial_p']:.3g}).")


def _provenance(p: dict) -> str:
    head = f"{p['position']} ({p['role']}): "
    if p.get("source") == "photo":
        return head + (f"the uploaded photo (SHA-256 {p['photo_sha256'][:16]}…), face "
                       f"{p['face_index'] + 1}, aligned with the {p.get('framing')} framing.")
    rec = p.get("record") or {}
    chain = " \u2190 ".join([rec.get("operation") or "?"] +
                            [a.get("operation") or "?" for a in p.get("ancestors") or []])
    latent = rec.get("latent") or []
    return head + (f"synthetic face {p.get('face_id')}, bundle {str(rec.get('bundle_hash'))[:16]}, "
                   f"operations {chain}, latent {rec.get('latent_space')} "
                   f"({len(latent)} values), noise seed {rec.get('noise_seed')}, "
                   f"\u03c8 {rec.get('truncation_psi')}, precision "
                   f"{rec.get('precision') or 'float32'}.")


class _Report(FPDF):
    """A4 pages with a running footer: page number and, for research-only bundles, the notice."""

    def __init__(self, notice: str | None) -> None:
        super().__init__(format="A4")
        self.notice = notice
        self.set_auto_page_break(True, margin=22)
        self.family = "Helvetica"
        if (FONT_DIR / "DejaVuSans.ttf").is_file():
            self.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
            self.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
            self.family = "DejaVu"
        self.set_font(self.family, size=10)

    def text_of(self, text: str) -> str:
        if self.family == "DejaVu":
            return text
        return text.encode("latin-1", "replace").decode("latin-1")  # core fonts: Latin-1

    def footer(self) -> None:
        self.set_y(-18)
        self.set_font(self.family, size=7)
        if self.notice:
            self.set_text_color(*RED)
            self.multi_cell(0, 3.2, self.text_of(self.notice))
            self.set_text_color(0, 0, 0)
        self.cell(0, 4, f"LiGAN lineup report, page {self.page_no()}", align="R")
        self.set_font(self.family, size=10)

    def heading(self, text: str, size: int = 12) -> None:
        self.ln(2)
        self.set_font(self.family, "B", size)
        self.multi_cell(0, size * 0.55, self.text_of(text))
        self.set_font(self.family, size=10)
        self.ln(1)

    def subheading(self, text: str) -> None:
        self.heading(text, size=10)

    def para(self, text: str) -> None:
        self.multi_cell(0, 5, self.text_of(text))
        self.ln(1)

    def bullet(self, text: str) -> None:
        self.set_x(self.l_margin + 4)
        self.multi_cell(self.epw - 4, 5, self.text_of("\u2022 " + text))


def report_filename(lineup: dict) -> str:
    return f"lineup-{lineup['id']}-report.pdf"

