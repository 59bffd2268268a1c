// Small DOM helpers shared by the desktop UI and the browser guest page.

/** The `<dt>`/`<dd>` pairs of a definition list, one per row. */
export function termRows(rows: [string, string][]): HTMLElement[] {
  return rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  });
}
