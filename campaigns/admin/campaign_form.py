"""The campaign form as a flow: the trigger's parameters and the guardrail overrides as
form fields built from their specs (``trigger_params.PARAMS``, the policy's own fields), not
JSON boxes.

Each trigger's parameters are fields named ``trigger__<kind>__<name>`` (the page shows only
the chosen trigger's; without JavaScript all are shown, each labelled with its trigger). On
save they become ``Campaign.trigger_params``: the values that differ from the spec's default
(so a default changed in code reaches every campaign that kept it), checked by the same
``trigger_params_errors`` the model's ``clean`` runs, each error on its field. Each
overridable guardrail is ``guardrail__<name>``, empty meaning "the policy's value", which
its help text and placeholder show.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db import models

from learners.models import AccountRole, Segment

from ..models import OVERRIDABLE, Campaign, GuardrailPolicy
from ..trigger_params import PARAMS, Param, TriggerKind, trigger_params_errors

TRIGGER_PREFIX = "trigger__"
GUARDRAIL_PREFIX = "guardrail__"


def trigger_field_name(kind: str, name: str) -> str:
    return f"{TRIGGER_PREFIX}{kind}__{name}"


def guardrail_field_name(name: str) -> str:
    return f"{GUARDRAIL_PREFIX}{name}"


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _param_field(kind: str, name: str, param: Param) -> forms.Field:
    """A form field for one trigger parameter: its type, bounds, help and default."""
    trigger = TriggerKind(kind).label
    default = param.default
    shown = ", ".join(map(str, default)) if isinstance(default, list) else default
    help_text = param.help or ""
    if default not in (None, "", [], {}):
        help_text = f"{help_text} (default {shown})".strip()
    common: dict[str, Any] = {
        "required": False,
        "label": f"{_label(name)} — {trigger}",
        "help_text": help_text,
    }
    if kind == TriggerKind.SEGMENT_ENTRY and name == "segment":
        return forms.ModelChoiceField(
            queryset=Segment.objects.filter(is_active=True).order_by("name"), **common
        )
    if param.kind is int:
        return forms.IntegerField(
            min_value=None if param.minimum is None else int(param.minimum),
            max_value=None if param.maximum is None else int(param.maximum),
            **common,
        )
    if param.kind is float:
        return forms.FloatField(min_value=param.minimum, max_value=param.maximum, **common)
    if param.kind is list:
        common["help_text"] = f"{help_text}; separate values with commas".lstrip("; ")
        return forms.CharField(widget=forms.TextInput(attrs={"size": 60}), **common)
    if param.kind is dict:
        common["help_text"] = f'{help_text}, as JSON, e.g. {{"plan": "team"}}'
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), **common)
    return forms.CharField(**common)


def _param_initial(param: Param, value: Any) -> Any:
    if param.kind is list:
        return ", ".join(map(str, value or []))
    if param.kind is dict:
        return json.dumps(value or {})
    return value


def _param_value(name: str, param: Param, raw: Any) -> tuple[Any, str | None]:
    """The parameter's value from its field (None: left empty), or an error."""
    if raw in (None, ""):
        return None, None
    if isinstance(raw, models.Model):
        return raw.pk, None
    if param.kind is list:
        parts = [part.strip() for part in str(raw).split(",") if part.strip()]
        if param.item is int:
            try:
                return [int(part) for part in parts], None
            except ValueError:
                return None, "whole numbers separated by commas, e.g. 80, 90, 100"
        return parts, None
    if param.kind is dict:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            return None, f"not valid JSON: {error.msg} (column {error.colno})"
        if not isinstance(value, dict):
            return None, 'must be a JSON object, e.g. {"plan": "team"}'
        return value, None
    return raw, None


def _policy_field(name: str) -> models.Field:
    field = GuardrailPolicy._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field


def _guardrail_field(name: str) -> forms.Field:
    """The override field of one policy guardrail (its help and placeholder name the
    policy's value once the form is built: ``_show_policy``)."""
    model_field = _policy_field(name)
    label = str(model_field.verbose_name).capitalize()
    if isinstance(model_field, models.BooleanField):
        return forms.TypedChoiceField(
            required=False,
            label=label,
            choices=[("", "Policy default"), ("1", "Yes"), ("0", "No")],
            coerce=lambda v: v == "1",
            empty_value=None,
            help_text=str(model_field.help_text),
        )
    return forms.IntegerField(required=False, min_value=0, label=label)


def _show_policy(field: forms.Field, name: str, policy: GuardrailPolicy) -> None:
    model_field = _policy_field(name)
    value = getattr(policy, name)
    if isinstance(field, forms.TypedChoiceField):
        field.choices = [
            ("", f"Policy default ({'yes' if value else 'no'})"),
            ("1", "Yes"),
            ("0", "No"),
        ]
        return
    field.help_text = f"Empty: the guardrail policy's {value}. {model_field.help_text}".strip()
    field.widget.attrs["placeholder"] = f"policy: {value}"


class CampaignForm(forms.ModelForm):
    """``Campaign``'s fields, with ``trigger_params`` and ``guardrails`` as generated fields
    (see the module docstring)."""

    # The roles as boxes to tick (the model keeps them as a JSON list).
    target_roles = forms.MultipleChoiceField(
        choices=AccountRole.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Target roles",
        help_text="Account-level triggers reach these roles of the account; none ticked: "
        "every member.",
    )

    class Meta:
        model = Campaign
        exclude = ["trigger_params", "guardrails"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance: Campaign = self.instance
        current = instance.trigger_params or {}
        for kind, spec in PARAMS.items():
            for name, param in spec.items():
                field_name = trigger_field_name(kind, name)
                chosen = instance.trigger == kind and name in current
                value = current[name] if chosen else param.default
                self.initial.setdefault(field_name, _param_initial(param, value))
        policy = GuardrailPolicy.load()
        overrides = instance.guardrails or {}
        for name in OVERRIDABLE:
            field_name = guardrail_field_name(name)
            if field_name in self.fields:
                _show_policy(self.fields[field_name], name, policy)
            if name in overrides:
                value = overrides[name]
                self.initial.setdefault(
                    field_name, ("1" if value else "0") if isinstance(value, bool) else value
                )

    def clean_target_roles(self) -> list[str]:
        ticked = set(self.cleaned_data.get("target_roles") or [])
        return [role for role in AccountRole.values if role in ticked]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("trigger")
        params: dict[str, Any] = {}
        if kind in PARAMS:
            for name, param in PARAMS[kind].items():
                field_name = trigger_field_name(kind, name)
                value, error = _param_value(name, param, data.get(field_name))
                if error:
                    self.add_error(field_name, error)
                    continue
                if value is None:
                    continue  # the default, or required (said below)
                if value != param.default:
                    params[name] = value
            for error in trigger_params_errors(kind, params):
                name = error.split(":")[0].split(" ")[0]
                target = trigger_field_name(kind, name)
                if target in self.fields and target not in self.errors:
                    self.add_error(target, error.split(": ", 1)[-1])
                elif target not in self.errors:
                    self.add_error("trigger", error)
        self.instance.trigger_params = params
        overrides: dict[str, Any] = {}
        for name in OVERRIDABLE:
            value = data.get(guardrail_field_name(name))
            if value is not None and value != "":
                overrides[name] = value
        self.instance.guardrails = overrides
        return data

    def _update_errors(self, errors: Any) -> None:
        """The model's own check of ``trigger_params`` / ``guardrails`` (``Campaign.clean``)
        finds what ``clean`` above already put on the fields: said once, on the trigger."""
        error_dict = getattr(errors, "error_dict", None)
        if error_dict:
            for key in ("trigger_params", "guardrails"):
                found = error_dict.pop(key, None)
                if found and not any(name.startswith(TRIGGER_PREFIX) for name in self.errors):
                    error_dict.setdefault(
                        "trigger" if key == "trigger_params" else "__all__", []
                    ).extend(found)
            if not error_dict:
                return
        super()._update_errors(errors)  # type: ignore[misc]  # (django-stubs omit it)


# The generated fields are declared on the class (a ModelAdmin's form may only name model
# fields or declared ones).
for _kind, _spec in PARAMS.items():
    for _name, _param in _spec.items():
        CampaignForm.base_fields[trigger_field_name(_kind, _name)] = _param_field(
            _kind, _name, _param
        )
        CampaignForm.declared_fields[trigger_field_name(_kind, _name)] = CampaignForm.base_fields[
            trigger_field_name(_kind, _name)
        ]
for _name in OVERRIDABLE:
    CampaignForm.base_fields[guardrail_field_name(_name)] = _guardrail_field(_name)
    CampaignForm.declared_fields[guardrail_field_name(_name)] = CampaignForm.base_fields[
        guardrail_field_name(_name)
    ]


def trigger_fieldset_fields() -> list[str]:
    """Every trigger's parameter fields, in the spec's order (the "Trigger" step)."""
    return [trigger_field_name(kind, name) for kind, spec in PARAMS.items() for name in spec]


def guardrail_fieldset_fields() -> list[str]:
    return [guardrail_field_name(name) for name in OVERRIDABLE]
