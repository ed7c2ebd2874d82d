"""The fixed lists of the report form. Keys travel in envelopes; labels are translated."""

from flask_babel import lazy_gettext as _l

CONTENT_TYPES = {
    "unsure": _l("I am not sure"),
    "images": _l("Images"),
    "videos": _l("Videos"),
    "text": _l("Text, stories or chat"),
    "links": _l("Links or adverts leading to such material"),
    "other": _l("Something else"),
}

WHERE_FOUND = {
    "unsure": _l("I am not sure"),
    "website": _l("A website"),
    "social": _l("A social media service"),
    "messaging": _l("A messaging app or group"),
    "forum": _l("A forum or chat room"),
    "file_sharing": _l("A file-sharing or cloud storage service"),
    "search": _l("Search engine results"),
    "other": _l("Somewhere else"),
}
