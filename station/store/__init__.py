"""The station's one SQLite database, and one owner for each of its tables' SQL.

    clips, dockings, bad_folders                        queue.py       (ClipQueue)
    outbox                                              outbox.py      (Outbox)
    officers, devices, personal_issues, held_clips      mirror.py      (Mirror)
    checkouts                                           checkouts.py   (Checkouts)
    camera_updates, firmware_artifacts,                 updates.py     (Updates; the feed's offers
      update_handovers, update_results                                  through put_offer)
    meta (one key per owner)                            meta.py

``StationStore`` (database.py) opens the file once per process and holds one of each; the
migrations of every table are one history (schema.py). A change that spans tables (an ingest
and its events, a checkout and its event) opens ``store.writer.write()`` and calls each
owner inside it: the owners' writes join that one transaction.
"""

from station.store.database import StationStore

__all__ = ["StationStore"]
