"""The organization's installed apps page: who sees it, who uninstalls, and isolation; app
tokens' twin keys are not listed as the org's keys."""

import pytest
from django.urls import reverse

from keys.models import ApiKey
from keys.selectors import key_list
from marketplace.models import Install
from portal.roles import Role
from tests.factories import ApiKeyFactory, MembershipFactory, ProjectFactory, UserFactory
from tests.marketplace.test_gallery import installed, make_app, make_partner

pytestmark = pytest.mark.django_db


@pytest.fixture
def install(org):
    app = make_app(make_partner(), name="Doc Sync")
    return installed(app, org)


def login(client, org, role):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=role)
    client.force_login(user)
    return user


def test_members_see_the_installed_apps_and_only_admins_may_uninstall(client, org, install):
    login(client, org, Role.VIEWER)
    page = client.get(reverse("installs:list", kwargs={"slug": org.slug}))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-install="doc-sync"' in html and "Uninstall" not in html
    url = reverse("installs:uninstall", kwargs={"slug": org.slug, "install_id": install.id})
    assert client.post(url).status_code == 403
    login(client, org, Role.DEVELOPER)
    assert client.post(url).status_code == 403
    install.refresh_from_db()
    assert install.active


def test_an_admin_uninstalls_from_the_page(client, org, install):
    login(client, org, Role.ADMIN)
    url = reverse("installs:uninstall", kwargs={"slug": org.slug, "install_id": install.id})
    response = client.post(url)
    assert response.status_code == 302
    install.refresh_from_db()
    assert not install.active
    page = client.get(reverse("installs:list", kwargs={"slug": org.slug}))
    assert b"No apps installed" in page.content


def test_another_org_cannot_see_or_uninstall_the_install(client, org, other_org, install):
    login(client, other_org, Role.OWNER)
    page = client.get(reverse("installs:list", kwargs={"slug": other_org.slug}))
    assert b"doc-sync" not in page.content
    url = reverse("installs:uninstall", kwargs={"slug": other_org.slug, "install_id": install.id})
    assert client.post(url).status_code == 404
    own_slug_url = reverse(
        "installs:uninstall", kwargs={"slug": org.slug, "install_id": install.id}
    )
    assert client.post(own_slug_url).status_code == 404  # not a member of org
    assert Install.objects.get(pk=install.pk).active


def test_app_twin_keys_are_not_listed_as_the_orgs_keys(org, install):
    project = ProjectFactory(organization=org)
    own = ApiKeyFactory(project=project)
    ApiKey.objects.filter(pk=ApiKeyFactory(project=project).pk).update(app_id=install.app_id)
    assert list(key_list(organization=org)) == [own]
