"""Ingest: photos and MegaDetector output in, typed records and crops out.

Pure functions over files; nothing here touches the database.

- `megadetector`: parse batch output JSON (format 1.x) into `MDBatch`.
- `paths`: one spelling for paths from detections files and folder scans.
- `photos`: size, capture time and camera of a photo.
- `scan`: find photos under a folder; SHA-256 of a file.
- `crop`: cut detection boxes out of a photo, one decode per photo.
"""
