"""Portal: white-label reporting portals for online child sexual abuse material."""


def create_app(*args, **kwargs):
    from portal.app import create_app as factory

    return factory(*args, **kwargs)
