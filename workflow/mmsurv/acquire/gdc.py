"""GDC command line: list the open diagnostic slides of TCGA projects, write the sheet, download.

Slides: `query_slide_manifest` → slide sheet → `fetch_slide` (mmsurv.acquire.gdc_slides). Omics
(acquisition.omics.source gdc) are listed, downloaded and parsed by `mmsurv.acquire.gdc_omics`;
both query through `mmsurv.acquire.gdc_api` and download through `mmsurv.acquire.transfer`.

The NCI Genomic Data Commons (GDC) API has a search endpoint (`/files`, paginated JSON) and a
data endpoint (`/data/{file_id}`, HTTP Range supported). Both URLs are parameters here and config
keys in the workflow (`download.files_endpoint`, `download.data_endpoint`), so tests and mirrors
point them elsewhere. HTTP goes through `requests` (a dependency of Snakemake itself).

CLI: `python -m mmsurv.acquire.gdc manifest|sheet|download --help`.
"""

from __future__ import annotations

import argparse
import sys

from mmsurv.acquire.gdc_slides import (
    fetch_slide,
    manifest_to_sheet,
    write_cohort_manifest,
    write_sheet_from_manifests,
    write_slide_sheet,
)
from mmsurv.acquire.transfer import DEFAULT_DATA_ENDPOINT, DEFAULT_FILES_ENDPOINT, DOWNLOAD_DEFAULTS
from mmsurv.io import setup_logging


def _add_http_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that talk to the GDC."""
    d = DOWNLOAD_DEFAULTS
    parser.add_argument("--timeout", type=float, default=d["timeout"], help="seconds per request")
    parser.add_argument("--retries", type=int, default=d["retries"], help="retries per request")
    parser.add_argument(
        "--backoff", type=float, default=d["backoff"], help="first back-off (s), doubles"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: `manifest` lists a cohort's slides, `sheet` joins manifests, `download`."""
    parser = argparse.ArgumentParser(prog="python -m mmsurv.acquire.gdc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_man = sub.add_parser("manifest", help="list the open diagnostic slides of GDC projects")
    p_man.add_argument(
        "--project", action="append", required=True, help="GDC project id (repeatable)"
    )
    p_man.add_argument("--cohort", help="cohort name of the rows (default: the single project)")
    p_man.add_argument("--out", required=True, help="manifest TSV to write")
    p_man.add_argument("--sheet", help="also write this slide sheet TSV for the workflow")
    p_man.add_argument("--slide-dir", help="download directory used in the sheet's `path`")
    p_man.add_argument("--files-endpoint", default=DEFAULT_FILES_ENDPOINT)
    p_man.add_argument("--page-size", type=int, default=DOWNLOAD_DEFAULTS["page_size"])
    _add_http_args(p_man)

    p_sheet = sub.add_parser("sheet", help="write the slide sheet of one or more manifests")
    p_sheet.add_argument("--manifest", action="append", required=True, help="(repeatable)")
    p_sheet.add_argument("--slide-dir", required=True, help="download directory")
    p_sheet.add_argument("--out", required=True, help="slide sheet TSV to write")

    p_dl = sub.add_parser("download", help="download one GDC file, resumable and verified")
    p_dl.add_argument("--file-id", required=True)
    p_dl.add_argument("--out", required=True, help="destination file")
    p_dl.add_argument("--md5", help="expected md5 (hex)")
    p_dl.add_argument("--size", type=int, help="expected size in bytes")
    p_dl.add_argument("--data-endpoint", default=DEFAULT_DATA_ENDPOINT)
    _add_http_args(p_dl)

    args = parser.parse_args(argv)
    setup_logging(None)
    if args.command == "manifest":
        if args.sheet and not args.slide_dir:
            parser.error("--sheet needs --slide-dir")
        cohort = args.cohort or (args.project[0] if len(args.project) == 1 else None)
        if cohort is None:
            parser.error("several --project values need --cohort")
        manifest = write_cohort_manifest(
            cohort,
            args.out,
            project_ids=args.project,
            download={
                "files_endpoint": args.files_endpoint,
                "page_size": args.page_size,
                "timeout": args.timeout,
                "retries": args.retries,
                "backoff": args.backoff,
            },
        )
        if args.sheet:
            write_slide_sheet(manifest_to_sheet([manifest], args.slide_dir), args.sheet)
    elif args.command == "sheet":
        write_sheet_from_manifests(args.manifest, args.slide_dir, args.out)
    else:
        fetch_slide(
            args.file_id,
            args.out,
            md5=args.md5,
            size=args.size,
            download={
                "data_endpoint": args.data_endpoint,
                "timeout": args.timeout,
                "retries": args.retries,
                "backoff": args.backoff,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
