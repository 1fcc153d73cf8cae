# Stage 6: the pages of the HTML report (snakemake --report results/<name>/report.html):
# summary.md and each result table as HTML, which the report shows inline (Markdown and CSV
# files only download there). Captions: workflow/report/summary.rst and table.rst.


rule report_summary:
    input:
        summary=f"{RESULTS}/summary.md",
        identity=identity(
            "report_summary",
            "scripts/report_pages.py",
            f"{RESULTS}/identity/report_summary.json",
        ),
    output:
        page=report(
            f"{RESULTS}/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"page": "claims and verdicts"},
        ),
        identity=f"{RESULTS}/identity/report_summary.json",
    log:
        f"{LOGS}/report/summary.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/report_pages.py summary --markdown {input.summary} --html {output.page} 2> {log}"
        )


rule report_table:
    input:
        table=f"{RESULTS}/{{table}}.csv",
        identity=identity(
            "report_table",
            "scripts/report_pages.py",
            f"{RESULTS}/identity/report_table/{{table}}.json",
            max_rows=200,
        ),
    output:
        page=report(
            f"{RESULTS}/html/{{table}}.html",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        identity=f"{RESULTS}/identity/report_table/{{table}}.json",
    log:
        f"{LOGS}/report/{{table}}.log",
    wildcard_constraints:
        table="|".join(pipeline.plan.TABLE_NAMES),
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
        max_rows=200,  # rows shown; the CSV file under Downloads has them all
    shell:
        recorded(
            "python src/scripts/report_pages.py table --csv {input.table} --html {output.page}"
            " --max-rows {params.max_rows} 2> {log}"
        )
