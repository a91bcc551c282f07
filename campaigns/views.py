"""The public pages a message links to: unsubscribe / preferences, and tracked clicks.

No login: the signed token in the URL is the credential, bound to one send and so to one
learner; a forged or damaged token gets a 404 and changes nothing. Changing preferences also
needs a same-site POST (the page's CSRF token); only the RFC 8058 one-click POST comes without
one, and it can only unsubscribe. The pages name no one (the address is partly masked), so a
forwarded email leaks little, and no cache keeps them (``Cache-Control: no-store``).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from learners.consent import consent_preferences_save, consent_unsubscribe, opted_out
from learners.models import MARKETING_CATEGORIES, ConsentSource, MessageCategory

from .links import click_token_read, unsubscribe_token_read
from .models import Send, SendEvent, SendEventKind
from .tracking import send_clicked


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/link_invalid.html", status=404)


def _masked(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}…@{domain}" if domain else ""


def _send(token: str) -> Send | None:
    """The send a preference link was signed for; None if forged, damaged or gone."""
    send_id = unsubscribe_token_read(token)
    if send_id is None:
        return None
    return Send.objects.select_related("learner").filter(pk=send_id).first()


def _is_one_click(request: HttpRequest) -> bool:
    """An RFC 8058 one-click POST (``List-Unsubscribe=One-Click``, what the List-Unsubscribe-Post
    header of every marketing email names: templates/mail.py)."""
    return request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click"


# Exempt from Django's CSRF check only to let the one-click POST through: a mail provider
# posts it cross-site, with no cookie and no CSRF token, and all it can do is unsubscribe the
# message's learner from the message's category. Every other POST (re-subscribing, choosing
# categories, unsubscribing from all) goes through ``_preferences``, which is CSRF-protected:
# it needs the token of the page's own form and its cookie, so a cross-site form cannot.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the preference page (a GET never unsubscribes: link scanners follow links).
    POST ``List-Unsubscribe=One-Click``: unsubscribe from the message's category at once —
    nothing else, whatever else the body says.
    POST from the page (same site, with its CSRF token): save the chosen categories, or
    unsubscribe from everything."""
    send = _send(token)
    if send is None:
        return _invalid(request)
    if _is_one_click(request):
        return _one_click(send)
    return _preferences(request, send)


def _one_click(send: Send) -> HttpResponse:
    """Unsubscribe from the send's category (idempotent); never subscribes anyone."""
    if send.is_test:
        return HttpResponse(
            "This was a test email: nothing is changed.\n", content_type="text/plain"
        )
    changed = consent_unsubscribe(
        send.learner, category=send.category, source=ConsentSource.ONE_CLICK, send_id=send.pk
    )
    if changed:
        SendEvent.objects.create(send=send, kind=SendEventKind.UNSUBSCRIBED, detail=send.category)
    return HttpResponse("Unsubscribed.\n", content_type="text/plain")


@csrf_protect
def _preferences(request: HttpRequest, send: Send) -> HttpResponse:
    learner = send.learner
    changed = 0
    done = ""
    if request.method == "POST":
        if send.is_test:
            done = "test"
        elif request.POST.get("action") == "all":
            changed = consent_unsubscribe(
                learner, source=ConsentSource.PREFERENCES, send_id=send.pk
            )
            done = "all"
        else:
            wanted = set(request.POST.getlist("category"))
            changed = consent_preferences_save(
                learner, wanted=wanted, source=ConsentSource.PREFERENCES, send_id=send.pk
            )
            done = "saved"
        if changed:
            SendEvent.objects.create(send=send, kind=SendEventKind.UNSUBSCRIBED, detail=done)
        learner.refresh_from_db()
    out = opted_out(learner)
    categories = [
        {
            "value": c,
            "label": MessageCategory(c).label,
            "checked": c not in out and learner.unsubscribed_at is None,
            "this": c == send.category,
        }
        for c in MARKETING_CATEGORIES
    ]
    return render(
        request,
        "campaigns/preferences.html",
        {
            "categories": categories,
            "email": _masked(send.to_email or learner.email),
            "unsubscribed_all": learner.unsubscribed_at is not None,
            "done": done,
            "changed": changed,
            "is_test": send.is_test,
            "this_category": MessageCategory(send.category).label,
        },
    )


@never_cache  # a redirect a shared cache kept would count no click and leak the token's URL
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    """A tracked link: record the click, then redirect to where the link pointed."""
    value = click_token_read(token)
    if value is None:
        return _invalid(request)
    send_id, url = value
    if request.method == "GET":
        send_clicked(send_id=send_id, url=url)
    return HttpResponseRedirect(url)
