"""What diagnosis announces, for the apps built on it (reports, feedback) to act on.
Diagnosis imports neither: each app connects its receivers in its `ready()`.

Receivers call one service of their app; they never write to diagnosis.
"""

from django.dispatch import Signal

#: A study has a result to read (the AI's, or the model's reason for declining it),
#: sent once that state is committed. Arguments: ``sender`` (Study), ``study_id``.
#: Outside any transaction, so receivers may enqueue work at once.
study_ready = Signal()

#: A radiologist's reading was saved, sent inside `review_submit`'s transaction:
#: what a receiver writes commits with the reading or not at all, and a receiver
#: that enqueues work must wait for the commit (`transaction.on_commit`).
#: Arguments: ``sender`` (Review), ``review`` (the new current reading).
review_saved = Signal()
