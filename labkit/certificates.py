"""A download that failed because this Python could not check the server's certificate.

The usual cause is a python.org install on macOS whose "Install Certificates.command" never ran
(that Python brings no CA certificates of its own); elsewhere, a machine without its system's CA
certificates, or a network that re-signs HTTPS with a certificate of its own. The network itself
works, so the usual offline hints would mislead: these say how to fix the certificates.
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.parse


def certificate_failure(error: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check behind a download error, or None: urllib hands it over as a
    URLError's reason, and a caller may have chained it into an error of its own."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        seen.add(id(error))
        reason = error.reason if isinstance(error, urllib.error.URLError) else None
        error = reason if isinstance(reason, BaseException) else error.__cause__ or error.__context__
    return None


def certificate_hint(platform: str = sys.platform) -> str:
    """How to give this Python the certificates it checks servers against, on `platform`."""
    if platform == "darwin":
        installer_folder = f"/Applications/Python {sys.version_info.major}.{sys.version_info.minor}"
        return f'run "{installer_folder}/Install Certificates.command", which python.org\'s installer puts there'
    return (
        "install the system's CA certificates (Debian/Ubuntu: sudo apt-get install ca-certificates), or run "
        "`pip install --upgrade certifi` and set SSL_CERT_FILE to the file `python -m certifi` prints"
    )


def certificate_problem(failure: ssl.SSLCertVerificationError, url: str) -> str:
    """One line: which server, what the check said, and the fix on this machine."""
    said = failure.verify_message or failure.reason or "certificate verify failed"
    server = urllib.parse.urlsplit(url).hostname or url
    return f"this Python could not verify the certificate of {server} ({said}); {certificate_hint()}, then try again"
